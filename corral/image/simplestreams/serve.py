"""corrald's public images as a simplestreams tree (served on the HTTPS listener by
corral/api/streams.py): streams/v1/index.json, streams/v1/images.json and the files under
streams/v1/images/<fingerprint>/<file name>.

Every public image of the default project whose files this server holds is one product (id
"<os>:<release>:<arch>:<variant>:<fingerprint prefix>") with one version; its aliases are the
image's aliases, so moving an alias to a rebuilt image moves it in the stream too (what a client's
refresh follows). Split images give their metadata and root files their own sha256, computed once
per file (size and mtime) and remembered.
"""
from __future__ import annotations

import asyncio
import os

from corral import timeutil
from corral.errors import NotFound
from corral.image import store
from corral.image.imagechecks import file_extension
from corral.image.simplestreams import products

PROJECT = "default"
FILES = "streams/v1/images"


class StreamsView:
    def __init__(self, images):
        self.images = images     # corral.image.images.Images
        self._sha: dict[tuple[str, int, int], str] = {}

    def _sha256(self, path: str) -> str:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        sha = self._sha.get(key)
        if sha is None:
            sha = self._sha[key] = store.fingerprint([path])
        return sha

    def _files(self, img: dict, hashed: bool = True) -> list[tuple[products.File, str]]:
        """[(published file, local path)] of an image (blocking: hashes split parts unless not
        `hashed`)."""
        fp = img["fingerprint"]
        meta, rootfs = self.images.original_paths(fp)
        base = f"{FILES}/{fp}"
        if not os.path.exists(rootfs):
            name = f"{fp}{file_extension(meta)}"
            return [(products.File("unified", f"{base}/{name}", fp, os.path.getsize(meta)), meta)]
        rext = file_extension(rootfs)
        if img["type"] == "virtual-machine":
            ftype = "disk-kvm.img"
        elif rext == ".squashfs":
            ftype = "squashfs"
        else:
            ftype = "root.tar.xz"
        mname, rname = f"meta-{fp}{file_extension(meta)}", f"{fp}{rext}"
        sha = self._sha256 if hashed else (lambda _: "")
        return [(products.File("meta", f"{base}/{mname}", sha(meta), os.path.getsize(meta)), meta),
                (products.File("root", f"{base}/{rname}", sha(rootfs), os.path.getsize(rootfs), ftype), rootfs)]

    async def _public(self) -> list[dict]:
        return [i for i in await self.images.get_all(PROJECT)
                if i["public"] and os.path.isfile(self.images.original_paths(i["fingerprint"])[0])]

    async def products(self) -> dict:
        out: dict = {}
        for img in await self._public():
            try:
                files = await asyncio.to_thread(self._files, img)
            except OSError:
                continue   # deleted meanwhile
            try:
                created = int(timeutil.parse(img["created_at"]).timestamp())
            except (ValueError, TypeError):
                created = 0
            props = img.get("properties") or {}
            pub = products.Published(
                fingerprint=img["fingerprint"], architecture=img["architecture"], created_at=max(created, 0),
                properties=props, files=[f for f, _ in files], aliases=[a["name"] for a in img["aliases"]])
            pid, _ = pub.product_key()
            pub.product_id = f"{pid}:{img['fingerprint'][:12]}"
            products.add(out, pub)
        return out

    async def images_json(self) -> dict:
        return products.products_doc(await self.products())

    async def index_json(self) -> dict:
        return products.index_doc(await self.products())

    async def file(self, fingerprint: str, name: str) -> str:
        """The local path of a published file (404 for anything else)."""
        for img in await self._public():
            if img["fingerprint"] != fingerprint:
                continue
            for f, path in await asyncio.to_thread(self._files, img, False):
                if f.path == f"{FILES}/{fingerprint}/{name}":
                    return path
        raise NotFound("not found")
