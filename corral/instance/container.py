"""The `container` instance type: a container run by liblxc (corral/instance/drivers/lxc.py),
its root filesystem a directory of its storage volume. What each lifecycle step does to the host
(devices, templates, the volume's directories) is here; the manager only loads and locks."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil

from corral import config, timeutil
from corral.db.queries import instances as q
from corral.db.queries import storage as qs
from corral.errors import BadRequest
from corral.image.templates import render_templates
from corral import rawidmap
from corral.instance import backup_yaml, files, layout, live_keys
from corral.instance.devices import instance_devices
from corral.instance.devices.nic import release_links
from corral.instance.drivers.base import InstanceSpec
from corral.idmap import IdmapEntry, default_idmap
from corral.instance.instance import Instance
from corral.instance.model import FOREVER, render_record, root_pool, url
from corral.instance.recovery import freeze_marker
from corral.instance.snapshot_schedule import startup_snapshot
from corral.instance.types import register

log = logging.getLogger(__name__)


def idmap_of(cfg: dict) -> list[IdmapEntry] | None:
    """The id map of an expanded config (None: privileged, no user namespace)."""
    if config.value(config.INSTANCE, cfg, "security.privileged"):
        return None
    # volatile.idmap.next is the container's own map (made at create); raw.idmap goes on top.
    raw = cfg.get("volatile.idmap.next") or cfg.get("volatile.idmap.current")
    base = [IdmapEntry.from_lxd(e) for e in json.loads(raw)] if raw else default_idmap()
    return rawidmap.apply(base, cfg.get("raw.idmap", "")) if cfg.get("raw.idmap") else base


@register
class Container(Instance):
    type_name = "container"
    driver_type = "lxc"
    host_devices = True   # NICs, disks, kernel modules: on the host
    vtype = "container"   # its storage volume's type
    pool_kw: dict = {}    # what the pool's instance_* calls take for this type (a VM's: its volume type)

    @classmethod
    def make_driver(cls, insts):
        from corral.instance.drivers import get_driver
        return get_driver(cls.driver_type)(insts.lxcpath, on_stopped=insts.on_stopped_thread,
                                           logpath=insts.d.paths.join("logs"))

    @property
    def dname(self) -> str:
        return self.insts.driver_name(self.project, self.name)

    @property
    def volume(self) -> str:
        """The instance volume's name in its pool."""
        return self.insts.volume_name(self.project, self.name)

    @property
    def pool(self):
        """The storage Pool (corral/storage/pool.py) holding the instance's volume."""
        return self.d.pools.pool(self.loaded.pool)

    @property
    def mount_path(self) -> str:
        """Where the pool has the instance volume mounted (metadata.yaml, templates/, rootfs/)."""
        return self.pool.instance_path(self.volume, **self.pool_kw)

    @property
    def rootfs(self) -> str:
        return os.path.join(self.mount_path, "rootfs")

    # ---- reading ---------------------------------------------------------------------------

    def status(self) -> str:
        try:
            return self.driver.status(self.dname)
        except Exception:
            return "Error"

    def render(self, status: str | None = None) -> dict:
        return render_record(self.loaded, status or self.status())

    async def state(self) -> dict:
        return await asyncio.to_thread(self.state_blocking)

    def state_blocking(self) -> dict:
        st = self.driver.state(self.dname)
        if st.get("status") == "Stopped":
            st.update({"network": None, "pid": 0, "processes": 0})
        return st

    def _warm_state(self) -> None:
        try:
            self.driver.state(self.dname)
        except Exception:  # only a warm-up: the real read reports errors
            pass

    def spec(self) -> InstanceSpec:
        logs = self.insts.log_dir(self.project, self.name)
        return InstanceSpec(
            name=self.dname, rootfs=self.rootfs, config=self.config,
            devices=self.devices, idmap=idmap_of(self.config),
            log_file=os.path.join(logs, "lxc.log"), console_log_file=os.path.join(logs, "console.log"),
            hostname=self.name, mounts=list(self.d.instance_mounts(self.loaded)))

    def _lifecycle(self, action: str, requestor: dict | None = None, **kw) -> None:
        self.insts.events.lifecycle(action, url(self.name, self.project), project=self.project,
                                    requestor=requestor, **kw)

    # ---- start and stop --------------------------------------------------------------------

    def check_startable(self) -> None:
        """LXD's refusals before a start: running, paused, or a record that cannot be read."""
        status = self.status()
        if status == "Running":
            raise BadRequest("The instance is already running")
        if status == "Frozen":
            raise BadRequest("The instance is paused")
        if self.rec.get("load_error"):
            raise BadRequest(f"The instance's stored configuration cannot be loaded ({self.rec['load_error']}): "
                             "replace it (PUT) or delete the instance")

    async def start(self, requestor: dict | None = None) -> None:
        inst = self.loaded
        self.check_startable()
        await startup_snapshot(self.insts, inst)   # snapshots.schedule=@startup
        triggers = [t for t in (inst.config.get("volatile.apply_template"),) if t] + ["start"]
        context = {"instance": {"name": inst.name, "architecture": inst.rec["architecture"],
                                "privileged": str(bool(config.value(config.INSTANCE, inst.config,
                                                                    "security.privileged"))).lower(),
                                "ephemeral": str(inst.rec["ephemeral"]).lower()},
                   "config": inst.config, "devices": inst.devices}
        for trigger in triggers:
            await asyncio.to_thread(render_templates, self.mount_path, self.rootfs, trigger, context)
        if self.host_devices:
            await live_keys.load_kernel_modules(inst.config)
        spec = self.spec()
        devices = instance_devices(self.d, inst) if self.host_devices else []
        started = []
        try:
            post_start = []
            for dev in devices:
                rc = await dev.start()
                started.append(dev)
                spec.extra += rc.lxc
                spec.mounts += rc.mounts
                post_start += rc.post_start
            await asyncio.to_thread(self.driver.start, spec)
            pid = await asyncio.to_thread(self.driver.init_pid, spec.name)
            for hook in post_start:
                await asyncio.to_thread(hook, pid)
        except BaseException:
            if self.status() != "Stopped":
                await asyncio.to_thread(self.driver.stop, spec.name, True, 0)
            await stop_devices(started)
            raise
        changes: dict[str, str | None] = {"volatile.last_state.power": "RUNNING", "volatile.apply_template": None}
        if spec.idmap is not None:
            changes["volatile.idmap.current"] = json.dumps([e.to_lxd() for e in spec.idmap], separators=(",", ":"))
            changes["volatile.last_state.idmap"] = changes["volatile.idmap.current"]
        await self.insts.set_volatile(inst.project, inst.name, changes, last_used=timeutil.now())
        # Open the state readers (netlink into the new netns) now, off the request path, so the
        # first listing after a start does not pay for it.
        asyncio.get_running_loop().run_in_executor(None, self._warm_state)
        self._lifecycle("instance-started", requestor)

    async def stop(self, *, force: bool, timeout: float, requestor: dict | None = None,
                   event: bool = True) -> None:
        dname = self.dname
        status = self.status()
        if status == "Stopped":
            raise BadRequest("The instance is already stopped")
        if status == "Frozen":
            if not force:
                raise BadRequest("The instance is paused")
            await asyncio.to_thread(self.driver.unfreeze, dname)
        with self.insts.stopping_by_api(dname):
            t = FOREVER if timeout is None or timeout < 0 else int(timeout)
            await asyncio.to_thread(self.driver.stop, dname, force or t == 0, t)
        await self.stopped()
        if event:
            self._lifecycle("instance-stopped", requestor)
        if self.rec["ephemeral"]:
            await self.delete(requestor)

    async def stopped(self) -> None:
        """After the container stopped (by us or from inside): its devices, links and power state."""
        devices = instance_devices(self.d, self.loaded, tolerant=True) if self.host_devices else []
        await stop_devices(devices)
        if self.host_devices:
            await release_links(self.driver.phys_links(self.dname), wait=self._unreadable(devices))
        await self.insts.set_volatile(self.project, self.name, {"volatile.last_state.power": "STOPPED"})

    def _unreadable(self, devices) -> float:
        """Seconds to wait for NICs liblxc gives back: only when the record or a device could not be
        read (their devices did not clean up; normally the host end is gone already)."""
        wanted = [c for c in self.devices.values() if c.get("type") != "none"]
        return 2.0 if self.rec.get("load_error") or len(devices) < len(wanted) else 0.0

    async def restart(self, *, force: bool, timeout: float, requestor: dict | None = None) -> None:
        if self.status() != "Stopped":
            ephemeral = self.rec["ephemeral"]
            self.rec["ephemeral"] = False   # a restart never deletes an ephemeral instance
            try:
                await self.stop(force=force, timeout=timeout, event=False)
            finally:
                self.rec["ephemeral"] = ephemeral
        await self.insts.instance(await self.insts.load(self.project, self.name)).start()
        self._lifecycle("instance-restarted", requestor)

    async def freeze(self, requestor: dict | None = None) -> None:
        if self.status() != "Running":
            raise BadRequest("The instance isn't running")
        await asyncio.to_thread(self.driver.freeze, self.dname)
        self._lifecycle("instance-paused", requestor)

    async def unfreeze(self, requestor: dict | None = None) -> None:
        if self.status() != "Frozen":
            raise BadRequest("The instance isn't paused")
        await asyncio.to_thread(self.driver.unfreeze, self.dname)
        self._lifecycle("instance-resumed", requestor)

    async def update(self, fields: dict, requestor: dict | None = None) -> None:
        from corral.instance import update
        await update.commit(self.insts, self.loaded, fields, requestor=requestor)

    # ---- snapshots -------------------------------------------------------------------------

    async def snapshot(self, name: str, expires_at: str, description: str = "") -> None:
        """Copy the instance's volume to snapshot `name` and record it."""
        cur, insts = self.loaded, self.insts
        pool, vol = self.pool, self.volume
        running = self.status() == "Running"
        dname = self.dname
        # A consistent copy: freeze the container's processes while copying. The marker
        # lets a restarted daemon thaw a container this one froze and did not thaw.
        with freeze_marker(self.d.paths, dname) if running else contextlib.nullcontext():
            if running:
                await asyncio.to_thread(self.driver.freeze, dname)
            try:
                await asyncio.to_thread(pool.create_instance_snapshot, vol, name, **self.pool_kw)
            finally:
                if running:
                    await asyncio.to_thread(self.driver.unfreeze, dname)
        try:
            async with insts.db.transaction() as tx:
                await q.create_snapshot(tx, cur.rec["id"], {
                    "name": name, "created_at": timeutil.now(), "expires_at": expires_at,
                    "description": description, "architecture": cur.rec["architecture"],
                    "config": cur.rec["config"], "devices": cur.rec["devices"], "profiles": cur.rec["profiles"]})
        except BaseException:
            await asyncio.to_thread(pool.delete_instance_snapshot, vol, name, **self.pool_kw)
            raise
        await asyncio.to_thread(layout.sync, insts, cur)
        await layout.write_backup_file(insts, self.project, self.name)

    async def restore(self, snapshot: str) -> None:
        """The volume and the record (but its volatile keys) as they were in `snapshot`."""
        insts, cur = self.insts, self.loaded
        project, name = self.project, self.name
        s = await insts.get_snapshot(cur, snapshot)
        was_running = self.status() == "Running"
        if was_running:
            await self.stop(force=True, timeout=0, event=False)
        await asyncio.to_thread(self.pool.restore_instance, self.volume, snapshot, **self.pool_kw)
        cfg = {k: v for k, v in s["config"].items() if not k.startswith("volatile.")}
        cfg.update({k: v for k, v in cur.rec["config"].items() if k.startswith("volatile.")})
        async with insts.db.transaction() as tx:
            await q.update(tx, project, name, {"architecture": s["architecture"], "ephemeral": cur.rec["ephemeral"],
                                                "description": cur.rec["description"], "config": cfg,
                                                "devices": s["devices"], "profiles": s["profiles"]})
        await layout.write_backup_file(insts, project, name)
        if was_running:
            await insts.instance(await insts.load(project, name)).start()

    # ---- rename and delete -----------------------------------------------------------------

    async def rename(self, new: str) -> None:
        """Move the volume, snapshot, log and backup directories and the records to `new`."""
        insts, inst, pool = self.insts, self.loaded, self.pool
        old_vol, new_vol = self.volume, insts.volume_name(inst.project, new)
        # The daemon's own directories (not pool paths): logs and backups.
        moves = [(insts.log_dir(inst.project, inst.name), insts.log_dir(inst.project, new)),
                 (self.d.paths.join("backups", "instances", old_vol), self.d.paths.join("backups", "instances", new_vol))]
        await asyncio.to_thread(self.driver.delete, self.dname)
        undo = []
        try:
            if await asyncio.to_thread(pool.has_instance, old_vol, **self.pool_kw):   # the volume and its snapshots
                await asyncio.to_thread(pool.rename_instance, old_vol, new_vol, **self.pool_kw)
                undo.append(lambda: pool.rename_instance(new_vol, old_vol, **self.pool_kw))
            for a, b in moves:
                if os.path.exists(a):
                    os.rename(a, b)
                    undo.append(lambda a=a, b=b: os.rename(b, a))
            async with insts.db.transaction() as tx:
                await q.rename(tx, inst.project, inst.name, new)
                await qs.rename_volume(tx, inst.pool, inst.project, self.vtype, inst.name, new)
        except BaseException:
            for step in reversed(undo):
                await asyncio.to_thread(step)
            await asyncio.to_thread(self.driver.create, self.spec())   # as it was
            raise
        renamed = insts.instance(await insts.load(inst.project, new))
        await asyncio.to_thread(layout.remove, insts, inst.project, inst.name)
        await asyncio.to_thread(self.driver.create, renamed.spec())
        await asyncio.to_thread(layout.sync, insts, renamed.loaded)
        await layout.write_backup_file(insts, inst.project, new)

    async def delete(self, requestor: dict | None = None) -> None:
        insts, inst = self.insts, self.loaded
        vol = self.volume
        pool = self.d.pools.pool(root_pool(inst.devices) or self.d.pools.holding_instance(vol))
        if self.host_devices:
            await release_links(self.driver.phys_links(self.dname))
        await asyncio.to_thread(self.driver.delete, self.dname)
        await asyncio.to_thread(layout.remove, insts, inst.project, inst.name)
        # The record goes first: a crash half-way leaves files the start-up reconciliation removes,
        # never a record that points at nothing (backup.yaml even before: a volume without one is not
        # taken for an instance whose records were lost, see instance/backup_yaml.py).
        if await asyncio.to_thread(pool.has_instance, vol, **self.pool_kw):
            await asyncio.to_thread(backup_yaml.forget, await asyncio.to_thread(pool.instance_path, vol, **self.pool_kw))
        async with insts.db.transaction() as tx:
            await q.delete(tx, inst.project, inst.name)
            await qs.delete_volume(tx, pool.name, inst.project, self.vtype, inst.name)   # its volume's record
        await asyncio.to_thread(pool.delete_instance, vol, **self.pool_kw)   # the volume and its snapshots
        await asyncio.to_thread(shutil.rmtree, insts.log_dir(inst.project, inst.name), True)
        await asyncio.to_thread(insts.backups.delete_all, inst.project, inst.name)
        insts.forget_lock(inst.project, inst.name)
        self._lifecycle("instance-deleted", requestor)

    # ---- inside the container --------------------------------------------------------------

    def exec(self, command, env, cwd="/", uid=0, gid=0, interactive=False, width=80, height=24):
        return self.driver.exec(self.dname, command, env, cwd=cwd, uid=uid, gid=gid, interactive=interactive,
                                width=width, height=height)

    def console(self) -> int:
        return self.driver.console(self.dname)

    def console_log(self) -> bytes:
        return self.driver.console_log(self.dname)

    def file_get(self, path: str) -> files.Entry:
        return files.get(self.rootfs, path)

    def file_put(self, path, kind, data=None, uid=None, gid=None, mode=None, append=False) -> None:
        if kind == "directory":
            if isinstance(mode, str):
                mode = int(mode, 8) if mode else None
            files.make_dir(self.rootfs, path, uid, gid, mode)
        elif kind == "symlink":
            files.make_symlink(self.rootfs, path, data, uid, gid)
        elif kind == "file":
            files.write_file(self.rootfs, path, data, uid, gid, mode, append)
        else:
            raise BadRequest(f'Invalid X-LXD-type header "{kind}"')

    def file_delete(self, path: str) -> None:
        files.delete(self.rootfs, path)


async def stop_devices(devices) -> None:
    for dev in reversed(devices):
        try:
            await dev.stop()
        except Exception:
            log.exception("instance %s: stopping device %s failed", dev.inst.name, dev.name)
