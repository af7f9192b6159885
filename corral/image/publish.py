"""Publishing: an instance or snapshot packed into a new image (a part of corral/image/images.py's
Images, which inherits it; the methods use its store paths, locks, uploads and records)."""
from __future__ import annotations

import asyncio
import os
from typing import Any, Callable

from corral import timeutil
from corral.apitypes import ImagesPost
from corral.db.queries import images as q
from corral.errors import BadRequest, NotImplementedFeature
from corral.image import store
from corral.operations import Work
from corral.image.imagechecks import (COMPRESSIONS, check_aliases, check_expiry, check_properties,
                                      unlink as _unlink, url)


VM_DISK = "root.img"


def stage_vm(src_dir: str, stage: str) -> str:
    """A VM volume (metadata.yaml, templates/, root.img) as an image directory: metadata.yaml,
    templates/ and the disk as a compressed qcow2 `rootfs.img` (what LXD publishes)."""
    import shutil
    import subprocess
    os.makedirs(stage)
    shutil.copy2(os.path.join(src_dir, "metadata.yaml"), os.path.join(stage, "metadata.yaml"))
    if os.path.isdir(os.path.join(src_dir, "templates")):
        shutil.copytree(os.path.join(src_dir, "templates"), os.path.join(stage, "templates"), symlinks=True)
    r = subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", os.path.join(src_dir, VM_DISK),
                        os.path.join(stage, "rootfs.img")], capture_output=True, text=True)
    if r.returncode != 0:
        raise BadRequest(f"Failed converting the disk to qcow2: {r.stderr.strip()}")
    return stage


class ImagePublish:
    async def create_from_dir(self, project: str, src_dir: str, *, properties: dict, public: bool,
                              aliases: list[dict], compression: str, expires_at: str | None,
                              progress: Callable[[int], Any] | None = None, filename: str = "") -> str:
        """Publish: pack `src_dir` (metadata.yaml, templates/, rootfs/) as a unified image into the store
        and record it. progress(bytes_packed) is called on the event loop. Returns the fingerprint."""
        project = await self.effective_project(project)
        if compression not in COMPRESSIONS:
            raise BadRequest(f"Unsupported compression algorithm {compression!r} "
                             f"(use one of {', '.join(COMPRESSIONS)})")
        aliases = check_aliases(aliases)
        expires_at = check_expiry(expires_at)
        loop = asyncio.get_running_loop()
        report = (lambda n: loop.call_soon_threadsafe(progress, n)) if progress else None
        upload = await self.new_upload()
        try:
            packed = os.path.join(upload.dir, "image")
            budget = await asyncio.to_thread(self.budget, self.dir, "the disk holding the image store")
            image_type = "container"
            if os.path.isfile(os.path.join(src_dir, VM_DISK)) and not os.path.isdir(os.path.join(src_dir, "rootfs")):
                image_type = "virtual-machine"   # a VM's volume: its raw disk packed as a qcow2 rootfs.img
                src_dir = await asyncio.to_thread(stage_vm, src_dir, os.path.join(upload.dir, "vm"))
            _, fp, size = await asyncio.to_thread(store.pack_unified, src_dir, packed, compression, report,
                                                  budget)

            def read_meta() -> dict:
                with open(os.path.join(src_dir, "metadata.yaml"), "rb") as f:
                    return store.parse_metadata(f.read())
            meta = await asyncio.to_thread(read_meta)
            meta_dst, _ = self.original_paths(fp)
            async with self.lock(fp):
                async with self.db.session() as tx:
                    if await q.get(tx, project, fp) is not None:
                        raise BadRequest(f"The image already exists: {fp}")
                shared = bool(await self._exists_anywhere(fp)) and os.path.isfile(meta_dst)
                if not shared:
                    await asyncio.to_thread(os.replace, packed, meta_dst)
                try:
                    row = {"fingerprint": fp, "filename": filename, "size": size, "public": public,
                           "auto_update": False, "cached": False, "architecture": meta["architecture"],
                           "type": image_type, "created_at": timeutil.now(), "uploaded_at": timeutil.now(),
                           "expires_at": expires_at or store.rfc3339(meta["expiry_date"]),
                           "last_used_at": timeutil.ZERO,
                           "properties": {**meta["properties"], **(properties or {})}, "profiles": ["default"]}
                    await self._record(project, row, aliases)
                except BaseException:
                    if not shared:
                        await asyncio.to_thread(_unlink, meta_dst)
                    raise
        finally:
            await asyncio.to_thread(upload.cleanup)
        return fp

    def start_publish(self, project: str, req: ImagesPost, requestor: dict | None = None, source_project: str = ""):
        """POST /1.0/images with an instance or snapshot source: an operation. `project` holds the
        image (the effective one, features.images); the instance is `source_project`'s (the request's)."""
        source_project = source_project or project
        stype, name = (req.source.type, req.source.name) if req.source else ("", "")
        if not stype or not name:
            raise BadRequest("No source provided")
        if stype == "snapshot" and "/" not in name:
            raise BadRequest("Not a snapshot")
        if stype != "snapshot" and "/" in name:
            raise BadRequest("This is a snapshot")
        if self.publish_source is None:
            raise NotImplementedFeature("publishing instances")
        compression = req.compression_algorithm or self.default_compression(source_project) or "gzip"
        if compression not in COMPRESSIONS:
            raise BadRequest(f"Unsupported compression algorithm {compression!r} "
                             f"(use one of {', '.join(COMPRESSIONS)})")
        aliases = check_aliases([a.as_dict() for a in req.aliases])
        properties = check_properties(req.properties)
        public, expires_at, filename = req.public, check_expiry(req.expires_at), req.filename
        hook = self.publish_source

        async def run(op):
            def progress(n: int) -> None:
                op.update_metadata({"create_image_from_container_pack_progress":
                                    f"Image pack: {_human(n)}"})
            async with self._publish_lock:  # like LXD: one publish at a time
                res = await hook(source_project, stype, name)
                src_dir, props = res[0], res[1]
                cleanup = res[2] if len(res) > 2 else None
                try:
                    fp = await self.create_from_dir(project, src_dir, properties={**(props or {}), **properties},
                                                    public=public, aliases=aliases, compression=compression,
                                                    expires_at=expires_at, progress=progress, filename=filename)
                finally:
                    if cleanup is not None:
                        r = cleanup()
                        if asyncio.iscoroutine(r):
                            await r
            await self.replicate(project, fp)   # cluster.images_minimal_replica (image/replication.py)
            img = await self.get(project, fp)
            self.events.lifecycle("image-created", url(fp, project), project=project,
                                  context={"type": img["type"]}, requestor=requestor)
            return {"fingerprint": fp, "size": str(img["size"])}

        return Work(project=project, description="Downloading image", run=run)


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.2f}{unit}" if unit != "B" else f"{n}B"
        n /= 1000
    return f"{n}"
