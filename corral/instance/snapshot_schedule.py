"""Scheduled snapshots (snapshots.schedule), as LXD's autoCreate*SnapshotsTask.

Once a minute, at the minute boundary: every instance whose expanded snapshots.schedule fires in
that minute is snapshotted if it runs, or if snapshots.schedule.stopped=true; every custom volume
whose snapshots.schedule fires is snapshotted. Names come from snapshots.pattern (LXD's
NextSnapshotName), expiry from snapshots.expiry: the same paths as an unnamed API snapshot.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

from corral.config.keys import is_true
from corral.config.schedule import due, on_startup
from corral.db.queries import storage as qs
from corral.errors import CorralError
from corral.instance.requests import SnapshotCreate

log = logging.getLogger(__name__)


class SnapshotScheduler:
    def __init__(self, daemon):
        self.d = daemon
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            now = time.time()
            await asyncio.sleep(60 - now % 60 + 0.05)
            minute = datetime.fromtimestamp(time.time(), timezone.utc).replace(second=0, microsecond=0)
            try:
                await self.tick(minute)
            except Exception:  # noqa: BLE001 - the next minute tries again
                log.exception("scheduled snapshots failed")

    async def tick(self, minute: datetime) -> list[str]:
        """Take the snapshots due in `minute`; the URLs of what was snapshotted."""
        done = []
        insts = self.d.instances
        for inst in await insts.load_local(None):   # each member snapshots its own instances
            sched = inst.config.get("snapshots.schedule", "")
            try:
                if not sched or not due(sched, minute):
                    continue
                if insts.status(inst) != "Running" and not is_true(inst.config.get("snapshots.schedule.stopped")):
                    continue
                op = await insts.create_snapshot(inst.project, inst.name, SnapshotCreate(), None)
                await op.wait(None)
                done.append(f"/1.0/instances/{inst.name}?project={inst.project}")
            except (CorralError, ValueError) as e:
                log.warning("instance %s: scheduled snapshot: %s", inst.name, getattr(e, "message", e))
        async with self.d.db.session() as tx:
            vols = await qs.all_volumes(tx, "custom")
        for v in vols:
            sched = v["config"].get("snapshots.schedule", "")
            try:
                if not sched or not due(sched, minute):
                    continue
                op = await self.d.volumes.create_snapshot(v["pool"], v["project"], "custom", v["name"], {}, None)
                await op.wait(None)
                done.append(f"/1.0/storage-pools/{v['pool']}/volumes/custom/{v['name']}?project={v['project']}")
            except (CorralError, ValueError) as e:
                log.warning("volume %s/%s: scheduled snapshot: %s", v["pool"], v["name"], getattr(e, "message", e))
        return done


async def startup_snapshot(insts, inst) -> None:
    """LXD's startupSnapshot: an instance whose snapshots.schedule holds @startup is snapshotted as
    it starts (before it runs); the caller holds the instance lock."""
    if not on_startup(inst.config.get("snapshots.schedule", "")):
        return
    from corral.instance import snapshots
    snap = await snapshots.next_name(insts, inst)
    await insts.instance(inst).snapshot(snap, snapshots.default_expiry(inst))
    insts.events.lifecycle("instance-snapshot-created", f"/1.0/instances/{inst.name}/snapshots/{snap}",
                           project=inst.project)
