"""Images from other servers in the local store (LXD's ImageDownload): `lxc launch remote:x c1`,
`lxc image copy remote:x local:`, and the refreshes of corral/image/autoupdate.py.

An image wanted by an instance is downloaded once and kept as a cached image (`cached: true`,
last use recorded, `auto_update` from images.auto_update_cached when it was asked for by alias) with
its source (server, protocol, certificate, alias: the image's `update_source`). A later launch
resolves the alias on the remote again and reuses the local image with that fingerprint; when
images.auto_update_interval is not 0 a cached image from the same server and alias is reused even
if the remote has moved on (the auto-update task keeps it fresh), as LXD does. An image asked for by
fingerprint (private images: the client sends the fingerprint and a one-time secret) gets no source
and no auto-update, as in LXD.
"""
from __future__ import annotations

import asyncio
import logging
import os

from corral import timeutil
from corral.config.keys import is_true
from corral.db.queries import image_cache as qc
from corral.db.queries import images as q
from corral.db.queries import projects as qp
from corral.errors import Conflict
from corral.image.images import url
from corral.netproxy import proxy_for
from corral.image.remote import RemoteServer, RemoteSource
from corral.image.simplestreams.client import SimpleStreamsServer

log = logging.getLogger(__name__)


class ImageCache:
    def __init__(self, d):
        self.d = d
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, fingerprint: str) -> asyncio.Lock:
        lk = self._locks.get(fingerprint)
        if lk is None:
            lk = self._locks[fingerprint] = asyncio.Lock()
        return lk

    async def setting(self, project: str, key: str):
        """An images.* setting: the project's value when it sets one (LXD's projects may), else the
        server's. Integers for the intervals, a bool for images.auto_update_cached."""
        async with self.d.db.session() as tx:
            p = await qp.get(tx, project)
        raw = ((p or {}).get("config") or {}).get(key)
        if raw not in (None, ""):
            if key == "images.auto_update_cached":
                return is_true(raw)
            try:
                return int(raw)
            except ValueError:
                log.warning("project %s: ignoring invalid %s=%r", project, key, raw)
        return self.d.config.get(key)

    async def for_instance(self, project: str, src: RemoteSource, op=None, requestor: dict | None = None) -> str:
        """The fingerprint of the local (cached) copy of the remote image an instance is made from."""
        project = await self.d.images.effective_project(project)
        auto = bool(await self.setting(project, "images.auto_update_cached"))
        img = await self.download(project, src, op=op, set_cached=True, auto_update=auto, prefer_cached=True,
                                  requestor=requestor)
        return img["fingerprint"]

    async def download(self, project: str, src: RemoteSource, *, op=None, set_cached: bool = False,
                       auto_update: bool = False, public: bool = False, aliases: list[dict] | None = None,
                       prefer_cached: bool = False, user_requested: bool = False,
                       requestor: dict | None = None) -> dict:
        """The local image for `src` in `project` (the API object), downloaded unless already here."""
        images = self.d.images
        project = await images.effective_project(project)
        asked = src.name
        aliases = aliases or []
        server = SimpleStreamsServer if src.protocol == "simplestreams" else RemoteServer
        async with server(src, proxy_for(self.d.config, src.server)) as remote:
            info = await remote.image_info(asked)
            fp = info["fingerprint"]
            async with self._lock(fp):
                if prefer_cached and asked != fp and await self.setting(project, "images.auto_update_interval") > 0:
                    async with self.d.db.session() as tx:
                        cached = await qc.cached_source_fingerprint(tx, project, src.server, src.protocol, asked)
                    if cached:
                        fp = cached
                source = ({"server": src.server, "protocol": src.protocol, "certificate": src.certificate,
                           "alias": asked} if asked != fp else None)
                if await self._reuse(project, fp, source, set_cached=set_cached, public=public,
                                     aliases=aliases, user_requested=user_requested):
                    return await images.get(project, fp)
                report = (lambda text: op.update_metadata({"download_progress": text})) if op is not None else None
                upload = await images.new_upload()
                try:
                    split = await remote.download(info, upload, report)
                    if op is not None:
                        op.update_metadata({"fingerprint": fp, "size": str(upload.size)})
                    await images._import(project, upload, split=split, filename=info.get("filename") or "",
                                         public=public, properties=info.get("properties") or {},
                                         aliases=aliases, cached=set_cached,
                                         auto_update=auto_update and asked != fp, source=source)
                finally:
                    await asyncio.to_thread(upload.cleanup)
        self.d.events.lifecycle("image-created", url(fp, project), project=project,
                                context={"type": info.get("type") or "container"}, requestor=requestor)
        return await images.get(project, fp)

    async def _reuse(self, project: str, fp: str, source: dict | None, *, set_cached: bool, public: bool,
                     aliases: list[dict], user_requested: bool) -> bool:
        """Use the image if this server has it: in `project` as it is, from another project by adding
        a record (the files are shared). False when it must be downloaded."""
        async with self.d.db.transaction() as tx:
            row = await q.get(tx, project, fp)
            if row is None:
                others = await q.projects_with(tx, fp)
                here = await asyncio.to_thread(self._has_files, fp)
                images = self.d.images
                # in a cluster another member may hold the files: they are fetched when needed
                elsewhere = images.clustered() and any(n != images.cluster.member_id
                                                       for n in await q.holders(tx, fp))
                if not others or not (here or elsewhere):
                    return False
                other = await q.get(tx, others[0], fp)
                now = timeutil.now()
                await q.create(tx, project, {**other, "public": public, "cached": set_cached,
                                             "auto_update": other["auto_update"], "uploaded_at": now,
                                             "last_used_at": now if set_cached else timeutil.ZERO,
                                             "profiles": ["default"]}, local=here)
                if source is not None:
                    await qc.create_source(tx, project, fp, source)
            elif row["cached"] and user_requested:
                # An explicit copy of an image cached for instances keeps it (no expiry), as LXD.
                await qc.set_cached(tx, project, fp, False)
            for a in aliases:
                if await q.alias(tx, project, a["name"]) is not None:
                    raise Conflict(f"Alias already exists: {a['name']}")
                await q.alias_create(tx, project, a["name"], fp, a["description"])
        return True

    def _has_files(self, fp: str) -> bool:
        return os.path.isfile(self.d.images.original_paths(fp)[0])
