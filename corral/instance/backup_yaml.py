"""`backup.yaml` in every instance volume, as LXD keeps it: what `lxd recover` reads to bring an instance
back into the database when its records are lost (the volume survives a lost or reset database).

Layout (LXD 5.0's backup config): `container:` (the instance as GET /1.0/instances/<name> renders it),
`snapshots:` (each as GET .../snapshots/<snap>), `pool:`, `profiles:` (the profiles it uses, expanded
into the instance's expanded_config/devices), `volume:` and `volume_snapshots:`. File mode 0400,
written atomically (temp file + rename) in `<pool>/containers/<volume>/backup.yaml`.

The writer follows the instance lifecycle events (created, updated, renamed, started, stopped,
snapshot created/renamed/deleted, restored) and profile updates, and, after start-up, rewrites
the file of every instance whose file is stale (made by an older corrald, or changed while it was down).
It writes off the request path: the events of a short while (COALESCE) are gathered and each
instance they name is written once, so a launch (created, then started a few ms later) costs one
write after its operations, not two fsyncs under the instance's lock on the way. The database is
the truth; a file behind by that while after a crash is rewritten at the next start.
`parse()` reads one back (for recover); it keeps the parts recover needs and checks their types.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qs, unquote, urlsplit

from corral import timeutil
from corral.backup.yamlfile import forget  # noqa: F401 (the instance layer's name for it)

log = logging.getLogger(__name__)
_SKIP = {"instance-deleted", "instance-log-retrieved", "instance-console", "instance-console-retrieved",
         "instance-console-reset", "instance-exec", "instance-file-retrieved", "instance-file-pushed",
         "instance-file-deleted", "instance-backup-retrieved"}


def render(instances, inst, status: str, snaps: list[dict], pool: dict, profiles: list[dict]) -> dict:
    """The backup.yaml document of one instance (LXD's field order)."""
    vol = instances.volume_name(inst.project, inst.name)
    vm = inst.rec.get("type") == "virtual-machine"
    vtype, ctype = ("virtual-machine", "block") if vm else ("container", "filesystem")
    return {
        "container": instances.render(inst, status),
        "snapshots": [instances.render_snapshot(inst, s) for s in snaps],
        "pool": {"config": pool.get("config") or {}, "description": pool.get("description") or "",
                 "name": pool["name"], "driver": pool.get("driver") or "dir", "used_by": [],
                 "status": pool.get("status") or "Created", "locations": pool.get("locations") or [inst.location]},
        "profiles": [{"config": p.get("config") or {}, "description": p.get("description") or "",
                      "devices": p.get("devices") or {}, "name": p["name"], "used_by": []} for p in profiles],
        "volume": {"config": {}, "description": "", "name": vol, "type": vtype, "used_by": [],
                   "location": inst.location, "content_type": ctype, "project": inst.project,
                   "created_at": inst.rec.get("created_at") or timeutil.ZERO},
        "volume_snapshots": [{"description": s.get("description") or "", "expires_at": s["expires_at"],
                              "name": s["name"], "config": {}, "content_type": ctype,
                              "created_at": s["created_at"]} for s in snaps],
    }


def _target(event: dict) -> tuple[str, str | None] | None:
    """(project, instance name or None for "every instance of the project") an event concerns."""
    meta = event.get("metadata") or {}
    action, source = meta.get("action") or "", meta.get("source") or ""
    url = urlsplit(source)
    parts = [unquote(p) for p in url.path.split("/") if p]
    project = event.get("project") or (parse_qs(url.query).get("project") or ["default"])[0]
    if action.startswith("instance-") and action not in _SKIP and len(parts) >= 3 and parts[1] == "instances":
        return project, parts[2]
    if action == "profile-updated":
        return project, None
    return None


COALESCE = 0.25   # seconds of events gathered into one round of writes


BATCH = 50      # files written per worker-thread hop by the start-up pass
PAUSE = 0.02    # seconds between two batches


def _write_docs(layout, insts, docs: list) -> None:
    for inst, doc in docs:
        try:
            layout.write_doc(insts, inst, doc)
        except Exception:  # noqa: BLE001 - one instance's volume must not stop the others
            log.debug("backup.yaml of %s not written", inst.name, exc_info=True)


class BackupYamlWriter:
    """Keeps every instance's backup.yaml current (see the module docstring)."""

    def __init__(self, daemon):
        self.d = daemon
        self._task: asyncio.Task | None = None
        self._listener = None
        self._pending: dict[tuple[str, str | None], None] = {}   # targets gathered, in order

    async def start(self) -> None:
        self._listener = self.d.events.listen(["lifecycle"], project=None)
        self._task = asyncio.create_task(self._loop())

    async def _write_all(self) -> None:
        """Every instance's file once, after the daemon is ready: records, snapshots, profiles and
        statuses read in one go (not per instance), the files written BATCH at a time in one worker
        thread with a pause between batches (requests go first), and only where the text changed
        (a current file is read, not rewritten nor fsynced). A change made meanwhile is written
        again from its event, handled after this pass."""
        from corral.db.queries import profiles as qp   # noqa: PLC0415
        from corral.instance import layout, listing   # noqa: PLC0415 - they import this module's users
        insts = self.d.instances
        loaded = await insts.load_local(None)
        if not loaded:
            return
        snaps = await insts.snapshots_of_all()
        holders = {self.d.projects.holder("profiles", i.project) for i in loaded}
        async with self.d.db.session() as tx:
            profiles = {h: {p["name"]: p for p in await qp.get_all(tx, h)} for h in holders}
        pools = {name: await self.d.pools.get(name) for name in {i.pool for i in loaded}
                 if self.d.pools.available(name)}
        statuses = listing.statuses(insts, loaded)
        for start in range(0, len(loaded), BATCH):
            docs = []
            for inst, status in zip(loaded[start:start + BATCH], statuses[start:start + BATCH]):
                allp = profiles[self.d.projects.holder("profiles", inst.project)]
                if inst.pool not in pools or any(n not in allp for n in inst.rec["profiles"]):
                    continue   # keeps its last file (as write_backup_file does)
                if insts.lock(inst.project, inst.name).locked():
                    continue   # being changed: its own write and event follow
                docs.append((inst, render(insts, inst, status, snaps.get(inst.rec["id"], []), pools[inst.pool],
                                          [allp[n] for n in inst.rec["profiles"]])))
            await asyncio.to_thread(_write_docs, layout, insts, docs)
            await asyncio.sleep(PAUSE)

    async def stop(self) -> None:
        if self._listener is not None:
            self.d.events.unlisten(self._listener)
        if self._task is not None:
            # Write what is queued before going (the daemon stops after the last event).
            await self._drain()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _drain(self) -> None:
        self._gather()
        await self._flush()

    def _gather(self) -> None:
        while self._listener is not None and not self._listener.queue.empty():
            target = _target(self._listener.queue.get_nowait())
            if target is not None:
                self._pending[target] = None

    async def _loop(self) -> None:
        # Every instance once (in the background: the daemon does not wait for it to serve), then
        # the changes as they come, a round of them at a time.
        try:
            await self._write_all()
        except Exception:  # noqa: BLE001 - never kill the loop
            log.exception("writing backup.yaml files")
        while True:
            target = _target(await self._listener.queue.get())
            if target is None:
                continue
            self._pending[target] = None
            await asyncio.sleep(COALESCE)
            self._gather()
            await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            project, name = next(iter(self._pending))
            self._pending.pop((project, name), None)   # (stop() may flush beside the loop)
            await self._handle(project, name)

    async def _handle(self, project: str, name: str | None) -> None:
        if name is not None:
            if (project, None) not in self._pending:   # else written with its whole project
                await self._write(project, name)
            return
        for inst in await self.d.instances.load_local(project):
            self._pending.pop((inst.project, inst.name), None)
            await self._write(inst.project, inst.name)

    async def write_now(self, project: str, name: str) -> None:
        await self._write(project, name)

    async def _write(self, project: str, name: str) -> None:
        from corral.instance import layout   # noqa: PLC0415
        try:
            async with self.d.instances.lock(project, name):
                await layout.write_backup_file(self.d.instances, project, name)
        except Exception as e:  # noqa: BLE001 - the instance may be gone already; never kill the loop
            log.debug("backup.yaml of %s/%s not written: %s", project, name, e)
