"""The local image store with LXD semantics: uploads (unified and split), publishing an instance,
aliases, prefix lookups, export, deletion, and unpacking into storage pools for instances.

Originals live in $CORRAL_DIR/images/<fingerprint> (unified tarball, or the metadata tarball of a
split image) and $CORRAL_DIR/images/<fingerprint>.rootfs (split rootfs), like LXD. Rows are per
project; the files are shared by every project that has the same fingerprint. Uploads are staged
in a private build directory under $CORRAL_DIR/images and removed whatever happens.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from typing import Any, Awaitable, Callable

from corral import timeutil
from corral.apitypes import ImagePut
from corral.db import Database
from corral.db.queries import image_cache as qc
from corral.db.queries import images as q
from corral.db.queries import profiles as qprof
from corral.db.queries import projects as qp
from corral.config.keys import is_true
from corral.errors import BadRequest, Conflict, CorralError, NotFound
from corral.image import store, unpack, vmimage, vmunpack
from corral.image.aliases import ImageAliases
from corral.image.imagechecks import (alias_url, check_aliases, check_expiry, check_properties,  # noqa: F401
                                      file_extension, url)
from corral.image.publish import ImagePublish
from corral.image.replication import ImageReplication
from corral.image.imagechecks import rmtree as _rmtree, unlink as _unlink
from corral.image.upload import Upload
from corral.operations import Work
from corral.projects import profiles_project

log = logging.getLogger(__name__)

DEFAULT_POOL = "default"
BUILD_PREFIX = ".corral_build_"
ZERO_EXPIRY = "1970-01-01T00:00:00Z"
PUBLISH_TYPES = ("instance", "container", "virtual-machine", "snapshot")
_HEX = re.compile(r"^[0-9a-f]*$")

# async (project, source_type, name) -> (src_dir, properties) [, cleanup]; set by the instance layer.
PublishSource = Callable[[str, str, str], Awaitable[tuple]]


class Images(ImageAliases, ImagePublish, ImageReplication):
    def __init__(self, db: Database, paths, pools, events, operations, config=None, cluster=None):
        self.db = db
        self.config = config  # ServerConfig: images.max_unpacked_size, cluster.images_minimal_replica
        self.cluster = cluster  # where the other members' copies are (image/replication.py)
        self.paths = paths
        self.pools = pools
        self.events = events
        self.operations = operations
        self.dir = paths.join("images")
        self._locks: dict[str, asyncio.Lock] = {}
        self._publish_lock = asyncio.Lock()
        # Set by the instance layer: see PublishSource.
        self.publish_source: PublishSource | None = None
        # The server's images.compression_algorithm (set by the daemon): a publish's default.
        self.default_compression = lambda project: "gzip"

    # ---- housekeeping ---------------------------------------------------------------------------

    def _ensure_dir(self) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)

    async def load(self) -> None:
        """Create the image directory and remove build leftovers of a previous run, and in a cluster
        the files of images this member no longer holds."""
        def work():
            self._ensure_dir()
            for name in os.listdir(self.dir):
                if name.startswith(BUILD_PREFIX):
                    _rmtree(os.path.join(self.dir, name))
        await asyncio.to_thread(work)
        try:
            await self.prune_leftovers()
        except Exception:   # never keeps the daemon from starting
            log.exception("pruning leftover image files failed")

    def lock(self, fingerprint: str) -> asyncio.Lock:
        lk = self._locks.get(fingerprint)
        if lk is None:
            lk = self._locks[fingerprint] = asyncio.Lock()
        return lk

    def budget(self, target: str, what: str, noun: str = "unpacked size") -> unpack.Budget:
        """What an image may take under `target` (blocking: statvfs): images.max_unpacked_size and
        the free space there minus a margin."""
        setting = self.config.get("images.max_unpacked_size") if self.config is not None else None
        return unpack.budget_for(setting, self.paths.root, target, what, noun)

    def _pool_budget(self, pool) -> unpack.Budget:
        if pool is None:
            return self.budget(self.dir, "the disk holding the image store")
        return self.budget(pool.space_probe(), f'storage pool "{pool.name}"')

    def original_paths(self, fingerprint: str) -> tuple[str, str]:
        base = os.path.join(self.dir, fingerprint)
        return base, base + ".rootfs"

    async def effective_project(self, project: str) -> str:
        """Projects without features.images use the default project's images, as in LXD."""
        if project == "default":
            return project
        async with self.db.session() as tx:
            p = await qp.get(tx, project)
        if p is None:
            raise NotFound("Project not found")
        return project if is_true(p["config"].get("features.images")) else "default"

    # ---- reads ----------------------------------------------------------------------------------

    @staticmethod
    def _api(row: dict, aliases: list[dict], source: dict | None = None) -> dict:
        out = {"auto_update": row["auto_update"], "properties": row["properties"], "public": row["public"],
               "expires_at": row["expires_at"], "profiles": row["profiles"], "aliases": aliases,
               "architecture": row["architecture"], "cached": row["cached"], "filename": row["filename"],
               "fingerprint": row["fingerprint"], "size": row["size"]}
        if source is not None:   # where a cached or copied image came from (LXD's update_source)
            out["update_source"] = source
        return {**out, "type": row["type"], "created_at": row["created_at"], "last_used_at": row["last_used_at"],
                "uploaded_at": row["uploaded_at"]}

    @staticmethod
    def etag_fields(img: dict) -> list:
        return [img["public"], img["auto_update"], img["properties"]]

    async def fingerprints(self, project: str) -> list[str]:
        project = await self.effective_project(project)
        async with self.db.session() as tx:
            return await q.fingerprints(tx, project)

    async def urls(self, project: str) -> list[str]:
        return [f"/1.0/images/{fp}" for fp in await self.fingerprints(project)]

    async def get_all(self, project: str) -> list[dict]:
        project = await self.effective_project(project)
        async with self.db.session() as tx:
            rows = await q.get_all(tx, project)
            aliases = await q.aliases(tx, project)
            sources = await qc.sources(tx, project)
        by_fp: dict[str, list[dict]] = {}
        for a in aliases:
            by_fp.setdefault(a["target"], []).append({"name": a["name"], "description": a["description"]})
        return [self._api(r, by_fp.get(r["fingerprint"], []), sources.get(r["fingerprint"])) for r in rows]

    async def _full(self, tx, project: str, prefix: str) -> str:
        if not isinstance(prefix, str) or not prefix or not _HEX.match(prefix.lower()):
            raise NotFound("Image not found")
        matches = await q.by_prefix(tx, project, prefix.lower())
        if not matches:
            raise NotFound("Image not found")
        if len(matches) > 1:
            raise BadRequest("More than one image matches")
        return matches[0]

    async def full_fingerprint(self, project: str, prefix: str) -> str:
        project = await self.effective_project(project)
        async with self.db.session() as tx:
            return await self._full(tx, project, prefix)

    async def get(self, project: str, fingerprint: str) -> dict:
        """The LXD image object; `fingerprint` may be a unique prefix."""
        project = await self.effective_project(project)
        async with self.db.session() as tx:
            fp = await self._full(tx, project, fingerprint)
            row = await q.get(tx, project, fp)
            aliases = await q.aliases_of(tx, project, fp)
            source = await qc.source(tx, project, fp)
        if row is None:
            raise NotFound("Image not found")
        return self._api(row, aliases, source)

    async def resolve(self, project: str, source: dict) -> str:
        """The full fingerprint named by an instance source ({"alias"} or {"fingerprint"})."""
        project = await self.effective_project(project)
        alias, fp = source.get("alias"), source.get("fingerprint")
        async with self.db.session() as tx:
            if alias:
                if not isinstance(alias, str):
                    raise BadRequest('Invalid value for field "alias": expected string')
                a = await q.alias(tx, project, alias)
                if a is None:
                    raise NotFound("Image not found")
                fp = a["target"]
            if not fp:
                raise BadRequest("must specify one of alias or fingerprint for init from image")
            if not isinstance(fp, str):
                raise BadRequest('Invalid value for field "fingerprint": expected string')
            return await self._full(tx, project, fp)

    async def used_by_project(self, project: str) -> list[str]:
        async with self.db.session() as tx:
            fps = await q.fingerprints(tx, project)
        return [url(fp, project) for fp in fps]

    @staticmethod
    async def touch(tx, effective_project: str, fingerprint: str) -> None:
        """Mark the image used (last_use_date), in the caller's transaction (the project from
        `effective_project`, asked first): a new instance's records and its image's last use are
        one commit."""
        await q.touch(tx, effective_project, fingerprint, timeutil.now())

    async def export_files(self, project: str, fingerprint: str) -> tuple[dict, list[tuple[str, str, str]]]:
        """(image, [(part name, path, file name)]): one entry for unified images, two for split ones."""
        img = await self.get(project, fingerprint)
        fp = img["fingerprint"]
        meta, rootfs = self.original_paths(fp)
        if not os.path.exists(meta):
            raise CorralError(f"Image file for {fp} is missing from the image store")
        ext = await asyncio.to_thread(file_extension, meta)
        if os.path.exists(rootfs):
            rext = await asyncio.to_thread(file_extension, rootfs)
            part = "rootfs.img" if img["type"] == "virtual-machine" else "rootfs"
            return img, [("metadata", meta, f"meta-{fp}{ext}"), (part, rootfs, f"{fp}{rext}")]
        return img, [(f"{fp}{ext}", meta, f"{fp}{ext}")]

    # ---- unpacking for instances ---------------------------------------------------------------

    async def ensure_unpacked(self, fingerprint: str, pool, vtype: str = "container") -> None:
        """The pool's image volume (metadata.yaml, templates/, rootfs/: a storage Pool), made on first use.
        For a VM (`vtype` "virtual-machine"): metadata.yaml, templates/ and the disk as raw root.img."""
        async with self.lock(fingerprint):
            if await asyncio.to_thread(pool.has_image, fingerprint, vtype=vtype):
                return
            meta, rootfs = self.original_paths(fingerprint)
            if not os.path.isfile(meta):
                raise NotFound("Image not found")
            if vtype == "container" and await self.image_type(fingerprint) == vmimage.VM:
                # LXD's words (instancesPost); nothing unpacks a VM image's disk as a container rootfs
                raise BadRequest('Requested image\'s type "virtual-machine" doesn\'t match instance type "container"')

            def work():
                budget = self._pool_budget(pool)
                if vtype == "virtual-machine" and not os.path.isfile(rootfs):   # unified (lxc publish of a VM)
                    pool.create_image(fingerprint, lambda d: vmunpack.import_vm_unified(meta, d, budget=budget),
                                      vtype=vtype)
                elif vtype == "virtual-machine":
                    pool.create_image(fingerprint, lambda d: vmunpack.import_vm_split(meta, rootfs, d, budget=budget),
                                      vtype=vtype)
                elif os.path.isfile(rootfs):
                    pool.create_image(fingerprint, lambda d: store.import_split(meta, rootfs, d, budget=budget))
                else:
                    pool.create_image(fingerprint, lambda d: store.import_unified(meta, d, budget=budget))
            await asyncio.to_thread(work)

    async def image_type(self, fingerprint: str) -> str | None:
        """"container" or "virtual-machine" (None: no project has the image)."""
        async with self.db.session() as tx:
            for proj in await q.projects_with(tx, fingerprint):
                row = await q.get(tx, proj, fingerprint)
                if row is not None:
                    return row["type"]
        return None

    def _pools(self) -> list:
        out = []
        for name in self.pools.names():
            with contextlib.suppress(CorralError):
                out.append(self.pools.pool(name))
        return out

    def _default_pool(self):
        if DEFAULT_POOL in self.pools.names():
            return self.pools.pool(DEFAULT_POOL)
        return None

    # ---- creation --------------------------------------------------------------------------------

    async def new_upload(self) -> Upload:
        def mk():
            self._ensure_dir()
            budget = self.budget(self.dir, "the disk holding the image store", "size")
            return tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=self.dir), budget
        return Upload(*await asyncio.to_thread(mk))

    @staticmethod
    async def _check_new_aliases(tx, project: str, aliases: list[dict]) -> None:
        for a in aliases:
            if await q.alias(tx, project, a["name"]) is not None:
                raise Conflict(f"Alias already exists: {a['name']}")

    async def _record(self, project: str, row: dict, aliases: list[dict], source: dict | None = None) -> None:
        async with self.db.transaction() as tx:
            if await q.get(tx, project, row["fingerprint"]) is not None:
                raise BadRequest("Image with same fingerprint already exists")
            await self._check_new_aliases(tx, project, aliases)
            await q.create(tx, project, row)
            if source is not None:
                await qc.create_source(tx, project, row["fingerprint"], source)
            for a in aliases:
                await q.alias_create(tx, project, a["name"], row["fingerprint"], a["description"])

    async def _exists_anywhere(self, fingerprint: str) -> list[str]:
        async with self.db.session() as tx:
            return await q.projects_with(tx, fingerprint)

    def start_import(self, project: str, upload: Upload, *, split: bool, filename: str, public: bool,
                     properties: dict[str, str], aliases: list[dict], requestor: dict | None = None):
        """An operation that validates, stores and records an uploaded image. Always removes `upload`."""
        async def run(op):
            try:
                fp = upload.fingerprint
                op.update_metadata({"fingerprint": fp, "size": str(upload.size)})
                info = await self._import(project, upload, split=split, filename=filename, public=public,
                                          properties=properties, aliases=aliases)
                await self.replicate(project, fp)
                self.events.lifecycle("image-created", url(fp, project), project=project,
                                      context={"type": info.type}, requestor=requestor)
                return {"fingerprint": fp, "size": str(upload.size)}
            finally:
                await asyncio.to_thread(upload.cleanup)

        return Work(project=project, description="Downloading image", run=run)

    async def _import(self, project: str, upload: Upload, *, split: bool, filename: str, public: bool,
                      properties: dict[str, str], aliases: list[dict], cached: bool = False,
                      auto_update: bool = False, source: dict | None = None) -> store.ImageInfo:
        """Validate, store and record an upload; `cached`, `auto_update` and `source` (an images_source
        row) are for images downloaded from another server (image/cache.py). A virtual-machine image
        (a split upload's `rootfs.img`, or a unified tarball holding rootfs.img) is checked and kept
        as it came (corral/image/vmimage.py): nothing is unpacked into a pool for it."""
        fp = upload.fingerprint
        meta_dst, rootfs_dst = self.original_paths(fp)
        async with self.lock(fp):
            async with self.db.session() as tx:
                if await q.get(tx, project, fp) is not None:
                    raise BadRequest("Image with same fingerprint already exists")
                await self._check_new_aliases(tx, project, aliases)
            shared = bool(await self._exists_anywhere(fp)) and os.path.isfile(meta_dst)
            paths = list(upload.paths)
            vm = upload.vm_split if split else \
                await asyncio.to_thread(vmimage.unified_type, paths[0]) == vmimage.VM
            pool = None if shared or vm else self._default_pool()
            unpack_dir = os.path.join(upload.dir, "check")

            def validate() -> store.ImageInfo:
                out = []
                budget = self._pool_budget(pool)
                if vm:
                    if split:
                        return vmimage.inspect_split(paths[0], paths[1], fingerprint=fp, filename=filename,
                                                     budget=budget)
                    return vmimage.inspect_unified(paths[0], upload.dir, fingerprint=fp, filename=filename,
                                                   budget=budget)

                def unpack(dest: str) -> None:
                    if split:
                        out.append(store.import_split(paths[0], paths[1], dest, filename=filename, budget=budget))
                    else:
                        out.append(store.import_unified(paths[0], dest, filename=filename, budget=budget))
                if pool is None:
                    unpack(unpack_dir)
                    _rmtree(unpack_dir)
                else:
                    pool.create_image(fp, unpack)   # replaces a stale copy of an image nobody has
                return out[0]

            def install() -> None:
                for stale in (meta_dst, rootfs_dst):
                    _unlink(stale)
                os.rename(paths[0], meta_dst)
                if split:
                    os.rename(paths[1], rootfs_dst)

            def undo() -> None:
                if pool is not None:
                    pool.delete_image(fp)
                if not shared:
                    _unlink(meta_dst)
                    _unlink(rootfs_dst)

            try:
                info = await asyncio.to_thread(validate)
                if not shared:
                    await asyncio.to_thread(install)
                now = timeutil.now()
                row = {"fingerprint": fp, "filename": filename, "size": upload.size, "public": public,
                       "auto_update": auto_update, "cached": cached, "architecture": info.architecture,
                       "type": info.type, "created_at": info.created_at, "uploaded_at": now,
                       "expires_at": info.expires_at, "last_used_at": now if cached else timeutil.ZERO,
                       "properties": {**info.properties, **properties}, "profiles": ["default"]}
                await self._record(project, row, aliases, source)
            except BaseException:
                await asyncio.to_thread(undo)
                raise
        return info

    # ---- updates and deletion ---------------------------------------------------------------------

    async def update(self, project: str, fingerprint: str, req: ImagePut, *, replace: bool,
                     etag_check: Callable[[Any], None] | None = None, requestor: dict | None = None) -> None:
        project = await self.effective_project(project)
        async with self.db.transaction() as tx:
            fp = await self._full(tx, project, fingerprint)
            cur = await q.get(tx, project, fp)
            if cur is None:
                raise NotFound("Image not found")
            if etag_check is not None:
                etag_check(self.etag_fields(cur))
            new = dict(cur)
            expires = check_expiry(req.expires_at)
            if expires:
                new["expires_at"] = expires
            if replace:
                new["public"], new["auto_update"] = req.public, req.auto_update
                new["properties"] = check_properties(req.properties)
                new["profiles"] = ["default"] if req.profiles is None else req.profiles
            else:   # PATCH: what the client sent (a null keeps the current value)
                if req.given("public"):
                    new["public"] = req.public
                if req.given("auto_update"):
                    new["auto_update"] = req.auto_update
                if req.given("properties"):
                    new["properties"] = {**cur["properties"], **check_properties(req.properties)}
                if req.profiles is not None:
                    new["profiles"] = req.profiles
            prof_project = await profiles_project(tx, project)
            for p in new["profiles"]:
                if await qprof.get(tx, prof_project, p) is None:
                    raise BadRequest(f"Profile '{p}' doesn't exist")
            await q.update(tx, project, fp, new)
        self.events.lifecycle("image-updated", url(fp, project), project=project, requestor=requestor)

    async def start_delete(self, project: str, fingerprint: str, requestor: dict | None = None):
        project = await self.effective_project(project)
        fp = await self.full_fingerprint(project, fingerprint)

        async def run(op):
            await self.delete_now(project, fp, requestor)

        return Work(project=project, description="Deleting image", resources={"images": [f"/1.0/images/{fp}"]},
                    run=run)

    async def delete_now(self, project: str, fp: str, requestor: dict | None = None, event: bool = True) -> None:
        """Remove the image (full fingerprint) from `project`; its files go with its last project,
        on every member (image/replication.py)."""
        async with self.lock(fp):
            async with self.db.session() as tx:
                if await q.get(tx, project, fp) is None:
                    raise NotFound("Image not found")
                last = not [p for p in await q.projects_with(tx, fp) if p != project]
            if last:
                await self.delete_on_peers(fp)
            async with self.db.transaction() as tx:
                if await q.get(tx, project, fp) is None:
                    raise NotFound("Image not found")
                await qc.delete_source(tx, project, fp)
                await q.delete(tx, project, fp)
                others = await q.projects_with(tx, fp)
            if not others:
                await asyncio.to_thread(self._remove_files, fp)
        if event:
            self.events.lifecycle("image-deleted", url(fp, project), project=project, requestor=requestor)

    def _remove_files(self, fp: str) -> None:
        for pool in self._pools():
            pool.delete_image(fp)
        for path in self.original_paths(fp):
            _unlink(path)


def parse_json_body(raw: bytes) -> dict | None:
    """LXD treats any upload body that decodes as JSON as an ImagesPost request."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return body if isinstance(body, dict) else None
