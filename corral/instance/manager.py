"""Instances: loading, locking and start-up. One object per instance does the work
(corral/instance/instance.py; its class by the instance's type, corral/instance/types.py);
creation, state changes, renames, deletes and snapshots are in corral/instance/{creation,
lifecycle,snapshots}.py. The methods below that only pass a call on are what the rest of the daemon
calls (`daemon.instances.<x>`).

Host work runs in worker threads; every change to one instance is serialised by its lock.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from corral import config
from corral.db.queries import instances as q
from corral.db.queries import lxd
from corral.db.queries import profiles as qp
from corral.errors import BadRequest, CorralError, NotFound
from corral.instance import creation, layout, lifecycle, listing
from corral.instance import snapshots as snapshot_ops
from corral.instance.backups import Backups
from corral.instance.drivers.base import InstanceDriver, InstanceSpec
from corral.idmap import IdmapEntry
from corral.instance.instance import Instance
from corral.instance.model import (FOREVER, STATUS_CODES, Loaded, autostart_order, etag_fields,  # noqa: F401
                                   expand, resources, root_pool, url, volume_name)
from corral.instance.requests import (InstanceCreate, InstanceMove, InstanceStateChange, SnapshotCreate,
                                      SnapshotRename, SnapshotUpdate)
from corral.instance.types import instance_class

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 10   # expired snapshots are removed within this long


class Instances:
    def __init__(self, daemon, type_map: dict[str, str] | None = None):
        """`type_map`: the registered type (corral/instance/types.py) run for each LXD instance
        type; the mock mode maps "container" to "fake"."""
        self.d = daemon
        self.db = daemon.db
        self.events = daemon.events
        self.lxcpath = daemon.paths.join("containers")
        extra = type_map if type_map is not None else getattr(daemon, "instance_types", None)
        self.type_map = {"container": "container", **(extra if isinstance(extra, dict) else {})}
        for registered in self.type_map.values():
            instance_class(registered)   # a name not registered fails here, not at the first request
        self._drivers: dict[type, InstanceDriver] = {}
        self.driver_for(instance_class(self.type_map["container"]))   # made now, as before
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._reserved: set[tuple[str, str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping_by_api: set[str] = set()
        self._housekeeping: asyncio.Task | None = None
        self.backups = Backups(self)

    # ---- instance objects -----------------------------------------------------------------

    def driver_for(self, cls: type[Instance]) -> InstanceDriver:
        """The one driver of an instance class (instances of a type share it)."""
        drv = self._drivers.get(cls)
        if drv is None:
            drv = self._drivers[cls] = cls.make_driver(self)
        return drv

    @property
    def driver(self) -> InstanceDriver:
        """The driver of the class running containers (set it to swap that driver)."""
        return self.driver_for(instance_class(self.type_map["container"]))

    @driver.setter
    def driver(self, drv: InstanceDriver) -> None:
        self._drivers[instance_class(self.type_map["container"])] = drv

    def instance(self, inst: Loaded | Instance) -> Instance:
        """The object of the instance's type around a loaded record."""
        if isinstance(inst, Instance):
            return inst
        return instance_class(self.type_map.get(inst.type, inst.type))(self, inst)

    async def get(self, project: str, name: str) -> Instance:
        return self.instance(await self.load(project, name))

    # ---- names and paths ------------------------------------------------------------------

    volume_name = staticmethod(volume_name)

    def driver_name(self, project: str, name: str) -> str:
        return volume_name(project, name)

    def log_dir(self, project: str, name: str) -> str:
        return self.d.paths.join("logs", volume_name(project, name))

    def instance_path(self, inst: Loaded, snap: str | None = None) -> str:
        """Where the instance's pool has its volume (or a snapshot's) mounted: metadata.yaml,
        templates/, rootfs/ (blocking: a driver may have to mount it)."""
        return self.d.pools.pool(inst.pool).instance_path(volume_name(inst.project, inst.name), snap or None,
                                                          **self.instance(inst).pool_kw)

    # ---- locking --------------------------------------------------------------------------

    def lock(self, project: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((project, name), asyncio.Lock())

    def forget_lock(self, project: str, name: str) -> None:
        self._locks.pop((project, name), None)

    @contextlib.contextmanager
    def stopping_by_api(self, dname: str):
        """While a stop asked for through the API runs: the driver's stop notice is not a shutdown."""
        self._stopping_by_api.add(dname)
        try:
            yield
        finally:
            self._stopping_by_api.discard(dname)

    # ---- loading --------------------------------------------------------------------------

    async def _profiles(self, tx, project: str, names: list[str]) -> list[dict]:
        """The named profiles, from the project holding `project`'s profiles (features.profiles)."""
        allp = {p["name"]: p for p in await qp.get_all(tx, self.d.projects.holder("profiles", project))}
        missing = [n for n in names if n not in allp]
        if missing:
            raise BadRequest(f'Requested profile "{missing[0]}" doesn\'t exist')
        return [allp[n] for n in names]

    async def load(self, project: str, name: str) -> Loaded:
        async with self.db.session() as tx:
            rec = await q.get(tx, project, name)
            if rec is None:
                raise NotFound("Instance not found")
            allp = {p["name"]: p for p in await qp.get_all(tx, self.d.projects.holder("profiles", project))}
        missing = [n for n in rec["profiles"] if n not in allp]
        if missing:   # a row written by hand: still listed, stopped and deleted; start refuses it
            rec["load_error"] = "; ".join(filter(None, [rec.get("load_error"),
                                                        f'profile "{missing[0]}" doesn\'t exist']))
        profiles = [allp[n] for n in rec["profiles"] if n in allp]
        return Loaded(rec, *expand(profiles, rec["config"], rec["devices"]))

    async def load_all(self, project: str | None, member_id: int | None = None) -> list[Loaded]:
        """The instances (of `project`; of the cluster member `member_id`)."""
        async with self.db.session() as tx:
            recs = await q.get_all(tx, project, member_id)
            by_project: dict[str, dict] = {}
            for r in recs:
                holder = self.d.projects.holder("profiles", r["project"])
                if holder not in by_project:
                    by_project[holder] = {p["name"]: p for p in await qp.get_all(tx, holder)}
        out = []
        for r in recs:
            allp = by_project[self.d.projects.holder("profiles", r["project"])]
            profs = [allp[n] for n in r["profiles"] if n in allp]
            out.append(Loaded(r, *expand(profs, r["config"], r["devices"])))
        return out

    async def load_local(self, project: str | None) -> list[Loaded]:
        """The instances (of `project`) this cluster member holds: what start-up, housekeeping and
        everything touching the host consider (the others are their members')."""
        return await self.load_all(project, lxd.LOCAL_NODE_ID)

    async def names(self, project: str) -> list[str]:
        async with self.db.session() as tx:
            return await q.names(tx, project)

    async def used_by_profile(self, project: str, profile: str) -> list[str]:
        """Instances using `project`'s profile, also those of projects without features.profiles."""
        out = []
        async with self.db.session() as tx:
            for p in self.d.projects.sharing("profiles", project):
                out += [url(r["name"], p) for r in await q.get_all(tx, p) if profile in r["profiles"]]
        return out

    async def used_by_pool(self, pool: str) -> list[str]:
        return [url(i.name, i.project) for i in await self.load_all(None) if root_pool(i.devices) == pool]

    async def set_volatile(self, project: str, name: str, changes: dict[str, str | None],
                           last_used: str | None = None) -> None:
        """Change daemon-managed config keys (None removes one), in one transaction."""
        async with self.db.transaction() as tx:
            rec = await q.get(tx, project, name)
            if rec is None:
                return
            cfg = dict(rec["config"])
            for k, v in changes.items():
                if v is None:
                    cfg.pop(k, None)
                else:
                    cfg[k] = v
            await q.set_config(tx, project, name, cfg)
            if last_used:
                await q.touch(tx, project, name, last_used)

    # ---- what the instance objects answer ---------------------------------------------------

    def status(self, inst: Loaded) -> str:
        return self.instance(inst).status()

    def render(self, inst: Loaded, status: str | None = None) -> dict:
        return self.instance(inst).render(status)

    etag_fields = staticmethod(etag_fields)

    async def state(self, inst: Loaded) -> dict:
        return await self.instance(inst).state()

    def spec(self, inst: Loaded) -> InstanceSpec:
        return self.instance(inst).spec()

    def idmap(self, cfg: dict) -> list[IdmapEntry] | None:
        from corral.instance.container import idmap_of
        return idmap_of(cfg)

    async def render_all(self, insts: list[Loaded]) -> list[dict]:
        """recursion=2 listings: every state read in one worker thread (many threads only fight
        over the GIL), every snapshot fetched with one query."""
        snaps = await self.snapshots_of_all()
        objs = [self.instance(i) for i in insts]
        states = await asyncio.to_thread(lambda: [o.state_blocking() for o in objs])
        out = []
        for obj, st in zip(objs, states):
            full = obj.render(st.get("status"))
            full["state"] = st
            full["snapshots"] = [snapshot_ops.render(obj.loaded, s) for s in snaps.get(obj.rec["id"], [])] or None
            full["backups"] = None
            out.append(full)
        return out

    async def render_full(self, inst: Loaded) -> dict:
        """recursion=2 of one instance: with state and snapshots."""
        obj = self.instance(inst)
        out = obj.render()
        out["state"] = await obj.state()
        out["snapshots"] = [snapshot_ops.render(inst, s) for s in await self.snapshots(inst)] or None
        out["backups"] = None
        return out

    # ---- operations (corral/instance/{creation,lifecycle,snapshots}.py) ---------------------

    async def create(self, project: str, req: InstanceCreate, requestor: dict | None):
        return await creation.create(self, project, req, requestor)

    async def register(self, rec: dict, snaps: list[dict]) -> None:
        await creation.register(self, rec, snaps)

    async def change_state(self, project: str, name: str, req: InstanceStateChange, requestor: dict | None):
        return await lifecycle.change_state(self, project, name, req, requestor)

    async def rename(self, project: str, name: str, req: InstanceMove, requestor: dict | None):
        return await lifecycle.rename(self, project, name, req, requestor)

    async def delete(self, project: str, name: str, requestor: dict | None):
        return await lifecycle.delete(self, project, name, requestor)

    async def start(self, inst: Loaded, requestor: dict | None = None) -> None:
        await self.instance(inst).start(requestor)

    async def stop(self, inst: Loaded, *, force: bool, timeout: float, requestor: dict | None = None,
                   event: bool = True) -> None:
        await self.instance(inst).stop(force=force, timeout=timeout, requestor=requestor, event=event)

    async def snapshots(self, inst: Loaded) -> list[dict]:
        return await snapshot_ops.snapshots(self, inst)

    async def snapshots_of_all(self) -> dict[int, list[dict]]:
        return await snapshot_ops.snapshots_of_all(self)

    async def get_snapshot(self, inst: Loaded, snap: str) -> dict:
        return await snapshot_ops.get(self, inst, snap)

    render_snapshot = staticmethod(snapshot_ops.render)

    async def _snapshot_name(self, inst: Loaded) -> str:
        return await snapshot_ops.next_name(self, inst)

    _default_expiry = staticmethod(snapshot_ops.default_expiry)

    async def take_snapshot(self, cur: Loaded, snap: str, expires_at: str, description: str = "") -> None:
        """Copy the instance's volume to snapshot `snap` and record it; the caller holds the instance lock."""
        await self.instance(cur).snapshot(snap, expires_at, description)

    async def create_snapshot(self, project: str, name: str, req: SnapshotCreate, requestor: dict | None):
        return await snapshot_ops.create(self, project, name, req, requestor)

    async def update_snapshot(self, project: str, name: str, snap: str, req: SnapshotUpdate) -> None:
        await snapshot_ops.update(self, project, name, snap, req)

    async def rename_snapshot(self, project: str, name: str, snap: str, req: SnapshotRename,
                              requestor: dict | None):
        return await snapshot_ops.rename(self, project, name, snap, req, requestor)

    async def delete_snapshot(self, project: str, name: str, snap: str, requestor: dict | None):
        return await snapshot_ops.delete(self, project, name, snap, requestor)

    async def restore(self, project: str, name: str, snap: str, requestor: dict | None):
        return await snapshot_ops.restore(self, project, name, snap, requestor)

    async def prune_expired_snapshots(self) -> int:
        return await snapshot_ops.prune_expired(self)

    # ---- publish --------------------------------------------------------------------------

    async def publish_source(self, project: str, source_type: str, name: str):
        """For images.publish: (directory to pack, image properties, cleanup). The instance stays
        locked (no start, no change) until the image is packed."""
        inst_name, _, snap = name.partition("/")
        inst = await self.load(project, inst_name)
        lock = self.lock(project, inst_name)
        await lock.acquire()
        try:
            if snap:
                await self.get_snapshot(inst, snap)
                src = await asyncio.to_thread(self.instance_path, inst, snap)
            else:
                if self.status(inst) != "Stopped":
                    raise BadRequest("The instance is currently running. Use --force to have it stopped and restarted")
                src = await asyncio.to_thread(self.instance_path, inst)
        except BaseException:
            lock.release()
            raise
        props = {k[len("image."):]: v for k, v in inst.config.items() if k.startswith("image.")}
        return src, props, lock.release

    # ---- stops seen by the driver -----------------------------------------------------------

    def on_stopped_thread(self, dname: str) -> None:
        """The driver saw a container stop (from inside, or by us): called on a watcher thread."""
        if self._loop is not None and dname not in self._stopping_by_api:
            asyncio.run_coroutine_threadsafe(self._on_stopped(dname), self._loop)

    async def _on_stopped(self, dname: str) -> None:
        for inst in await self.load_local(None):
            if self.driver_name(inst.project, inst.name) != dname:
                continue
            async with self.lock(inst.project, inst.name):
                obj = self.instance(inst)
                if obj.status() != "Stopped":
                    return
                await obj.stopped()
                self.events.lifecycle("instance-shutdown", url(inst.name, inst.project), project=inst.project)
                if inst.rec["ephemeral"]:
                    await obj.delete(None)
            return

    # ---- daemon start-up ------------------------------------------------------------------

    async def startup(self) -> None:
        """Re-attach to running containers, start boot.autostart ones, remove stopped ephemerals: this
        member's instances only."""
        self._loop = asyncio.get_running_loop()
        self.d.images.publish_source = self.publish_source
        await asyncio.to_thread(layout.record_patch, self)
        # One read of the records and one of the statuses for all instances (no liblxc object per
        # instance); the layout links in one worker thread. backup.yaml files are rewritten after
        # the daemon is ready, where stale (instance/backup_yaml.py).
        loaded = await self.load_local(None)
        await asyncio.to_thread(self._sync_layouts, loaded)
        statuses = listing.statuses(self, loaded)
        stopped = [inst for inst, status in zip(loaded, statuses) if status == "Stopped"]
        # Highest boot.autostart.priority first; boot.autostart.delay seconds after each start (LXD).
        for inst in sorted(stopped, key=autostart_order):
            try:
                obj = self.instance(inst)
                if inst.rec["ephemeral"]:
                    await obj.delete(None)
                    continue
                # LXD's rule: boot.autostart=true, or unset and the instance was running before.
                auto = inst.config.get("boot.autostart")
                was_running = inst.config.get("volatile.last_state.power") == "RUNNING"
                if auto == "true" or (auto is None and was_running):
                    await obj.start()
                    await asyncio.sleep(config.value(config.INSTANCE, inst.config, "boot.autostart.delay") or 0)
            except CorralError as e:
                log.warning("instance %s: %s", inst.name, e.message)
            except Exception:
                log.exception("instance %s: start-up handling failed", inst.name)

        self._housekeeping = asyncio.get_running_loop().create_task(self._housekeep())

    def _sync_layouts(self, loaded: list[Loaded]) -> None:
        for inst in loaded:
            try:   # LXD's data dir layout (also moves an older Corral's layout over, running or not)
                layout.sync(self, inst)
            except Exception:
                log.exception("instance %s: data directory links", inst.name)

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                await self.prune_expired_snapshots()
            except Exception:
                log.exception("pruning expired snapshots failed")

    async def shutdown(self) -> None:
        """Containers keep running when the daemon stops (as with LXD's daemon restart)."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        self._loop = None
