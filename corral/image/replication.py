"""Images in a cluster, as LXD 5.0 keeps them (a part of corral/image/images.py's Images, which
inherits it).

The image records (images, aliases, properties, sources) are global: every member lists every image.
The files live on the members that hold them (LXD's images_nodes rows; here a member holds a
fingerprint when it has a row for any record of it, the files being shared by the projects):
- on demand (LXD's LocateImage + instanceImageTransfer): a member that needs an image it lacks (an
  instance created from it) fetches the files from an online member holding them, over the cluster
  TLS (GET /1.0/images/<fp>/export as a member), checks the fingerprint, stores them and adds its
  row. One fetch per fingerprint at a time: concurrent launches wait for it and reuse it;
- after an import (upload, copy from another server, publish), imageSyncBetweenNodes: online members
  without the image are asked to fetch it (POST /internal/images/<fp>) until
  cluster.images_minimal_replica online members hold it (-1: every member); the import's operation
  waits for it and fails with LXD's "Failed syncing image between nodes" when a copy failed. The
  leader does the same for every image every hour (autoSyncImages: copies lost with a removed or
  dead member are made again);
- deletion of an image's last record (imageDelete with cluster.NotifyAll): every other member must
  be reachable ("peer node <address> is down" otherwise, nothing changed); each drops its
  images_nodes rows and then its files (DELETE /internal/images/<fp>), then the record goes. A
  member that fails leaves the record, pointing only at the members that still have the files;
- at start a member removes image files it holds no row for (LXD's pruneLeftoverImages: the files
  of images deleted while it was away).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import re
import urllib.parse

import aiohttp

from corral.db.queries import images as q
from corral.errors import CorralError, NotFound
from corral.image import store

log = logging.getLogger(__name__)

TRANSFER_TIMEOUT = 3600      # one image copied member to member (seconds, the whole request)
_FP = re.compile(r"^[0-9a-f]{64}$")


class ImageReplication:
    """Needs the Images attributes: db, config, dir, cluster, lock, original_paths, new_upload, _remove_files."""

    cluster = None   # corral.cluster.membership.Cluster, or None (no cluster layer: unit tests)

    def clustered(self) -> bool:
        return self.cluster is not None and self.cluster.clustered

    def has_files(self, fingerprint: str) -> bool:
        return os.path.isfile(self.original_paths(fingerprint)[0])

    async def _members(self) -> tuple[list[dict], set[int]]:
        """(every member, the ids of those online)."""
        members = await self.cluster.members()
        return members, {m["id"] for m in members if self.cluster.online(m)}

    async def _holders(self, fingerprint: str) -> list[int]:
        async with self.db.session() as tx:
            return await q.holders(tx, fingerprint)

    async def held_here(self, fingerprint: str) -> bool:
        """This member has the files and its row says so."""
        if not self.has_files(fingerprint):
            return False
        return self.cluster.member_id in await self._holders(fingerprint)

    async def locate(self, fingerprint: str) -> str | None:
        """LXD's LocateImage: None when this member holds the image, else the address of an online
        member that does; CorralError when no online member does."""
        held = await self._holders(fingerprint)
        if self.cluster.member_id in held and self.has_files(fingerprint):
            return None
        members, online = await self._members()
        addresses = [m["address"] for m in members if m["id"] in held and m["id"] in online
                     and m["id"] != self.cluster.member_id]
        if not addresses:
            raise CorralError("image not available on any online node")
        return random.choice(addresses)

    # ---- on demand ------------------------------------------------------------------------------

    async def ensure_local(self, project: str, fingerprint: str, holder: str = "") -> None:
        """The image's files on this member (fetched from another member when missing), its row
        added. `holder`: a member to fetch from first (the one asking for the copy). A no-op
        outside a cluster."""
        if not self.clustered() or await self.held_here(fingerprint):
            return
        async with self.lock(fingerprint):   # one fetch per fingerprint: the others wait and reuse it
            if await self.held_here(fingerprint):
                return
            async with self.db.session() as tx:
                projects = await q.projects_with(tx, fingerprint)
            if not projects:
                raise NotFound("Image not found")
            if self.has_files(fingerprint) and await asyncio.to_thread(self._files_match, fingerprint):
                await self._record_here(fingerprint)   # files left here (a copy whose row was lost)
                return
            try:
                address = holder if holder and await self._holds(holder, fingerprint) else \
                    await self.locate(fingerprint)
            except CorralError as e:
                raise CorralError(f'Locate image "{fingerprint}" in the cluster: {e.message}') from None
            if address is None:
                return
            log.info("fetching image %s from cluster member %s", fingerprint, address)
            await self._fetch(project if project in projects else projects[0], fingerprint, address)

    async def _holds(self, address: str, fingerprint: str) -> bool:
        members, online = await self._members()
        held = await self._holders(fingerprint)
        return any(m["address"] == address and m["id"] in held and m["id"] in online for m in members)

    def _files_match(self, fingerprint: str) -> bool:
        sha = hashlib.sha256()
        for path in self.original_paths(fingerprint):
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    while chunk := f.read(store.CHUNK):
                        sha.update(chunk)
        return sha.hexdigest() == fingerprint

    async def _record_here(self, fingerprint: str) -> None:
        async with self.db.transaction() as tx:
            records = await q.add_holder(tx, fingerprint)
        if not records:   # deleted meanwhile: nothing may point at these files
            await asyncio.to_thread(self._remove_files, fingerprint)
            raise NotFound("Image not found")

    async def _fetch(self, project: str, fingerprint: str, address: str) -> None:
        """Copy the files from the member at `address` (called with the fingerprint's lock held)."""
        upload = await self.new_upload()
        try:
            url = (f"https://{address}/1.0/images/{fingerprint}/export?"
                   + urllib.parse.urlencode({"project": project}))
            try:
                await self._receive(url, upload)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
                raise CorralError(f"Failed transferring image: {address}: {e or type(e).__name__}") from None
            if upload.fingerprint != fingerprint:
                raise CorralError(f"Failed transferring image: Image fingerprint doesn't match. "
                                  f"Got {upload.fingerprint} expected {fingerprint}")
            meta, rootfs = self.original_paths(fingerprint)
            paths = list(upload.paths)

            def install() -> None:
                for stale in (meta, rootfs):
                    if os.path.lexists(stale):
                        os.unlink(stale)
                os.rename(paths[0], meta)
                if len(paths) > 1:
                    os.rename(paths[1], rootfs)
            await asyncio.to_thread(install)
            await self._record_here(fingerprint)
        finally:
            await asyncio.to_thread(upload.cleanup)

    async def _receive(self, url: str, upload) -> None:
        timeout = aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT, sock_connect=10)
        async with self.cluster.peer.session().get(url, timeout=timeout, allow_redirects=False) as r:
            if r.status != 200:
                try:
                    why = (await r.json(content_type=None)).get("error") or f"HTTP {r.status}"
                except (ValueError, aiohttp.ClientError, AttributeError):
                    why = f"HTTP {r.status}"
                raise CorralError(f"Failed transferring image: {why}")
            if r.content_type != "multipart/form-data":
                await upload.receive("image", r.content.iter_chunked(store.CHUNK))
                return
            reader = aiohttp.MultipartReader.from_response(r)
            names = []
            while (part := await reader.next()) is not None:
                names.append(part.name)
                if part.name not in ("metadata", "rootfs", "rootfs.img") or len(names) > 2:
                    raise CorralError(f"Failed transferring image: unexpected part {part.name!r}")

                async def chunks(p=part):
                    while c := await p.read_chunk(store.CHUNK):
                        yield c
                await upload.receive("metadata" if len(names) == 1 else "rootfs", chunks())
            if len(names) != 2 or names[0] != "metadata":
                raise CorralError("Failed transferring image: a split image needs a metadata and a rootfs part")

    # ---- replicas -------------------------------------------------------------------------------

    async def replicate(self, project: str, fingerprint: str) -> None:
        """imageSyncBetweenNodes: online members without the image fetch it until
        cluster.images_minimal_replica online members hold it."""
        if not self.clustered():
            return
        want = int(self.config.get("cluster.images_minimal_replica")) if self.config is not None else 3
        members, online = await self._members()
        if want == -1:
            want = len(members)
        held = set(await self._holders(fingerprint))
        have = [m for m in members if m["id"] in held and m["id"] in online]
        if not have or want - len(have) <= 0:
            return
        targets = [m for m in members if m["id"] not in held and m["id"] in online]
        random.shuffle(targets)
        targets = targets[:want - len(have)]
        me = self.cluster.address if self.cluster.member_id in held else ""
        log.info("copying image %s to %s", fingerprint, ", ".join(m["name"] for m in targets) or "nobody")

        async def one(m):
            try:
                await self.cluster.peer.call(m["address"], "POST", f"/internal/images/{fingerprint}",
                                             {"project": project, "holder": me}, timeout=TRANSFER_TIMEOUT)
            except Exception as e:   # PeerError: the member's own error text
                return f'Failed to copy image to "{m["name"]}": {e}'
            return None
        errors = [e for e in await asyncio.gather(*(one(m) for m in targets)) if e]
        if errors:
            raise CorralError("Failed syncing image between nodes: " + "; ".join(errors))

    async def replicate_all(self) -> list[str]:
        """autoSyncImages: every image brought to its replica count; the fingerprints that failed."""
        if not self.clustered():
            return []
        async with self.db.session() as tx:
            images = await q.projects_by_fingerprint(tx)
        failed = []
        for fp, projects in images.items():
            try:
                await self.replicate(projects[0], fp)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.error("failed to synchronize image %s: %s", fp, getattr(e, "message", e))
                failed.append(fp)
        return failed

    # ---- deletion -------------------------------------------------------------------------------

    async def delete_on_peers(self, fingerprint: str) -> None:
        """Every other member drops its copy of the image (LXD's NotifyAll: all must be reachable,
        checked before any of them is asked)."""
        if not self.clustered():
            return
        members, online = await self._members()
        others = [m for m in members if m["id"] != self.cluster.member_id]
        for m in others:
            if m["id"] not in online and not await self._reachable(m["address"]):
                raise CorralError(f"peer node {m['address']} is down")

        async def one(m):
            try:
                await self.cluster.peer.call(m["address"], "DELETE", f"/internal/images/{fingerprint}", timeout=120)
            except Exception as e:
                return f"failed to notify peer {m['address']}: Failed to delete image from peer node: {e}"
            return None
        errors = [e for e in await asyncio.gather(*(one(m) for m in others)) if e]
        if errors:
            raise CorralError(errors[0])

    async def _reachable(self, address: str) -> bool:
        try:
            await self.cluster.peer.request(address, "GET", "/1.0", timeout=2)
            return True
        except Exception:
            return False

    async def drop_local(self, fingerprint: str) -> None:
        """This member's copy goes (a peer deletes the image): the rows first, so that no row ever
        names files this member no longer has; then the pools' image volumes and the files."""
        async with self.db.transaction() as tx:
            await q.drop_holder(tx, fingerprint)
        await asyncio.to_thread(self._remove_files, fingerprint)

    async def prune_leftovers(self) -> list[str]:
        """pruneLeftoverImages: remove the image files this member holds no row for."""
        if not self.clustered():
            return []
        async with self.db.session() as tx:
            keep = await q.held_by(tx, self.cluster.member_id)

        def work() -> list[str]:
            gone = []
            for name in sorted(os.listdir(self.dir)):
                fp = name.split(".", 1)[0]
                if _FP.match(fp) and fp not in keep and os.path.isfile(os.path.join(self.dir, name)):
                    os.unlink(os.path.join(self.dir, name))
                    gone.append(name)
            return gone
        gone = await asyncio.to_thread(work)
        if gone:
            log.info("removed leftover image files: %s", ", ".join(gone))
        return gone
