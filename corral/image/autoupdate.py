"""Keeping downloaded images fresh and the cache small, as LXD's autoUpdateImages, imageRefresh and
pruneExpiredImages do.

- Refresh (`lxc image refresh`, POST /1.0/images/<fp>/refresh, and the auto-update task): ask the
  image's source (update_source) what its alias points at now; when that is a new fingerprint,
  download it, give it the old image's aliases, profiles, last use and cached flag, and delete the
  old image. The operation's metadata says {"refreshed": true|false}; a manual refresh that
  refreshed sends an `image-refreshed` lifecycle event.
- The auto-update task runs at start and every hour; it updates the images with auto_update=true
  of each project whose images.auto_update_interval (hours, 0 disables) divides the hours since
  the daemon started.
- Expiry: at start and every 24 hours, cached images unused (last_used_at, or uploaded_at when never
  used) for more than images.remote_cache_expiry days (0 disables) are deleted.

- In a cluster (image/replication.py): every hour the leader brings every image to
  cluster.images_minimal_replica copies (LXD's autoSyncImages), and only the leader runs the two
  tasks above, so that an image is refreshed or expired once for the whole cluster (its deletion
  reaches every member). A refreshed image is copied to the members that held the old one (LXD's
  distributeImage) and to its replica count.

The tasks run as operations ("Updating images", "Cleaning up expired images", "Synchronizing images
across the cluster"); `run_task` is what the timer calls and what the unix-socket-only
POST /internal/testing/image-tasks triggers.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta, timezone

from corral import timeutil
from corral.db.queries import image_cache as qc
from corral.db.queries import images as q
from corral.db.queries import projects as qp
from corral.errors import BadRequest, CorralError, NotFound
from corral.image.images import url
from corral.image.remote import RemoteSource
from corral.operations import Work

log = logging.getLogger(__name__)

HOUR = 3600
TASKS = {"auto-update": "Updating images", "expire": "Cleaning up expired images",
         "sync": "Synchronizing images across the cluster"}
# After these the leader synchronizes the images at once (LXD does after a removal and a join).
MEMBERSHIP = ("cluster-member-removed", "cluster-member-added")


class ImageTasks:
    def __init__(self, d):
        self.d = d
        self._task: asyncio.Task | None = None
        self._refreshing: dict[tuple[str, str], asyncio.Lock] = {}
        self._watch: asyncio.Task | None = None
        self._listener = None
        self._sync: asyncio.Task | None = None
        self._sync_again = False

    # ---- the timer ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        self.start_watch()

    def start_watch(self) -> None:
        """Membership changes (lifecycle events) make the leader synchronize the images now."""
        self._watch = asyncio.get_running_loop().create_task(self._watch_members())

    async def stop(self) -> None:
        for name in ("_task", "_watch", "_sync"):
            task = getattr(self, name)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                setattr(self, name, None)
        if self._listener is not None:
            self.d.events.unlisten(self._listener)
            self._listener = None

    async def _watch_members(self) -> None:
        while True:
            if self._listener is None or self._listener.dropped:
                self._listener = self.d.events.listen(["lifecycle"], project=None)
            event = await self._listener.queue.get()
            if (event.get("metadata") or {}).get("action") not in MEMBERSHIP:
                continue
            if self._sync is not None and not self._sync.done():
                self._sync_again = True   # one more round once this one is done
            else:
                self._sync = asyncio.get_running_loop().create_task(self._sync_now())

    async def _sync_now(self) -> None:
        while True:
            self._sync_again = False
            try:
                if self.d.images.clustered() and await self.d.images.cluster.is_leader():
                    await self.d.operations.start(self.run_task("sync")).wait(None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("image synchronization after a membership change failed")
            if not self._sync_again:
                return

    async def _loop(self) -> None:
        hour = 0
        while True:
            for name in (("expire", "auto-update", "sync") if hour % 24 == 0 else ("auto-update", "sync")):
                try:
                    if not await self._has_work(name):   # no operation for nothing to do
                        continue
                    op = self.d.operations.start(self.run_task(name, hour))
                    await op.wait(None)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("image task %s failed", name)
            await asyncio.sleep(HOUR)
            hour += 1

    async def _has_work(self, name: str) -> bool:
        images = self.d.images
        if images.clustered() and not await images.cluster.is_leader():
            return False   # the leader does it for the cluster
        if name == "sync":
            return images.clustered()
        async with self.d.db.session() as tx:
            if name == "auto-update":
                return bool(await qc.auto_update_images(tx))
            return await qc.any_cached(tx)

    def run_task(self, name: str, hour: int = 0):
        """One of the periodic tasks as an operation's work, `hour` hours after the daemon started."""
        if name not in TASKS:
            raise BadRequest(f'Unknown image task "{name}" (expected one of {", ".join(TASKS)})')
        if not isinstance(hour, int) or isinstance(hour, bool) or hour < 0:
            raise BadRequest('Invalid value for field "hour": expected a non-negative integer')

        async def run(op):
            if name == "auto-update":
                return {"refreshed": await self.auto_update(hour)}
            if name == "sync":
                return {"failed": await self.d.images.replicate_all()}
            return {"expired": await self.prune_expired()}

        return Work(project="default", description=TASKS[name], run=run)

    # ---- auto-update ------------------------------------------------------------------------------

    async def auto_update(self, hour: int) -> list[str]:
        """Refresh every auto_update image whose project's interval is due; the fingerprints replaced."""
        async with self.d.db.session() as tx:
            rows = await qc.auto_update_images(tx)
        done = []
        for r in rows:
            interval = await self.d.image_cache.setting(r["project"], "images.auto_update_interval")
            if interval <= 0 or hour % interval:
                continue
            try:
                if await self.refresh(r["project"], r["fingerprint"]):
                    done.append(r["fingerprint"])
            except asyncio.CancelledError:
                raise
            except CorralError as e:
                log.error("failed to update image %s (project %s): %s", r["fingerprint"], r["project"], e.message)
            except Exception:
                log.exception("failed to update image %s (project %s)", r["fingerprint"], r["project"])
        return done

    # ---- refresh ----------------------------------------------------------------------------------

    async def start_refresh(self, project: str, fingerprint: str, requestor: dict | None = None):
        """POST /1.0/images/<fp>/refresh: the work; 404 now for an unknown image."""
        project = await self.d.images.effective_project(project)
        fp = await self.d.images.full_fingerprint(project, fingerprint)

        async def run(op):
            refreshed = await self.refresh(project, fp, op=op, requestor=requestor)
            return {"refreshed": refreshed}

        return Work(project=project, description="Refreshing image", run=run)

    async def refresh(self, project: str, fp: str, *, op=None, requestor: dict | None = None) -> bool:
        """Replace the image by what its source's alias points at now. True when it changed."""
        lock = self._refreshing.setdefault((project, fp), asyncio.Lock())
        async with lock:
            return await self._refresh(project, fp, op, requestor)

    async def _refresh(self, project: str, fp: str, op, requestor) -> bool:
        images = self.d.images
        async with self.d.db.session() as tx:
            old = await q.get(tx, project, fp)
            src = await qc.source(tx, project, fp)
            old_holders = await q.holders(tx, fp)
        if old is None:
            raise NotFound("Image not found")
        if src is None:
            raise BadRequest(f'Failed to update image "{fp}": it has no source to refresh from (only images '
                             f'downloaded from another server by alias have one)')
        remote = RemoteSource(server=src["server"], protocol=src["protocol"], alias=src["alias"],
                              fingerprint="", certificate=src["certificate"], image_type=old.get("type") or "")
        new = await self.d.image_cache.download(project, remote, op=op, auto_update=True, public=old["public"],
                                                requestor=requestor)
        new_fp = new["fingerprint"]
        if new_fp == fp:
            return False
        async with self.d.db.transaction() as tx:
            cur = await q.get(tx, project, new_fp)
            if cur is not None:
                await qc.set_cached(tx, project, new_fp, old["cached"] or cur["cached"], old["last_used_at"])
                await qc.move_aliases(tx, project, fp, new_fp)
                await q.update(tx, project, new_fp, {**cur, "profiles": old["profiles"]})
        await self._distribute(project, new_fp, old_holders)
        try:
            await images.delete_now(project, fp, event=False)
        except NotFound:
            pass
        except CorralError as e:   # a member is down: the old image stays until it is deleted
            log.error("image %s refreshed to %s but the old one is kept: %s", fp, new_fp, e.message)
        if op is not None:
            self.d.events.lifecycle("image-refreshed", url(fp, project), project=project, requestor=requestor)
        log.info("image %s (project %s) refreshed to %s", fp, project, new_fp)
        return True

    async def _distribute(self, project: str, fp: str, old_holders: list[int]) -> None:
        """The refreshed image to the online members that held the old one, then to its replica count
        (errors logged: the image is usable where it is)."""
        images = self.d.images
        if not images.clustered():
            return
        cluster = images.cluster
        members = {m["id"]: m for m in await cluster.members()}
        for nid in old_holders:
            m = members.get(nid)
            if m is None or nid == cluster.member_id or not cluster.online(m):
                continue
            try:
                await cluster.peer.call(m["address"], "POST", f"/internal/images/{fp}",
                                        {"project": project, "holder": cluster.address}, timeout=3600)
            except Exception as e:
                log.error("failed to copy refreshed image %s to %s: %s", fp, m["name"], e)
        try:
            await images.replicate(project, fp)
        except CorralError as e:
            log.error("%s", e.message)

    # ---- expiry -----------------------------------------------------------------------------------

    async def prune_expired(self) -> list[str]:
        """Delete the cached images unused for longer than images.remote_cache_expiry days."""
        async with self.d.db.session() as tx:
            projects = [p["name"] for p in await qp.get_all(tx)]
        now = datetime.now(timezone.utc)
        pruned = []
        for project in projects:
            days = await self.d.image_cache.setting(project, "images.remote_cache_expiry")
            if days <= 0:
                continue
            async with self.d.db.session() as tx:
                rows = await qc.cached_images(tx, project)
            for r in rows:
                stamp = r["last_used_at"] if not _zero(r["last_used_at"]) else r["uploaded_at"]
                try:
                    when = timeutil.parse(stamp)
                except ValueError:
                    continue
                if when + timedelta(days=days) > now:
                    continue
                try:
                    await self.d.images.delete_now(project, r["fingerprint"])
                    pruned.append(r["fingerprint"])
                except NotFound:
                    pass
                except CorralError as e:
                    log.error("failed to delete expired image %s: %s", r["fingerprint"], e.message)
        return pruned


def _zero(ts: str | None) -> bool:
    return not ts or ts.startswith(("0001-", "1970-"))
