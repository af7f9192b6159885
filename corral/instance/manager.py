"""Instances: LXD's semantics for containers (create, update, state changes, rename, delete,
snapshots), over the instance driver, the storage pool driver and the database.

Host work runs in worker threads; every change to one instance is serialised by its lock.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from corral import config, timeutil
from corral.db.queries import instances as q
from corral.db.queries import profiles as qp
from corral.db.queries import storage as qs
from corral.locks import LOCKS
from corral.instance.snapshot_schedule import startup_snapshot
from corral.instance import backup_yaml
from corral.instance.backups import Backups
from corral.instance.devices import instance_devices, validate_devices
from corral.instance.devices.nic import release_links
from corral import rawidmap
from corral.instance import layout, live_keys, poolmove, projectmove
from corral.errors import BadRequest, Conflict, CorralError, NotFound, NotImplementedFeature
from corral.image.remote import check_source
from corral.image.templates import render_templates
from corral.instance.drivers import get_driver
from corral.instance.drivers.base import InstanceSpec
from corral.idmap import IdmapEntry, default_idmap
from corral.config.schedule import next_snapshot_name
from corral.instance.recovery import freeze_marker
from corral.names import check_entity_name, check_instance_name

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 10   # expired snapshots are removed within this long
STATUS_CODES = {"Running": 103, "Stopped": 102, "Frozen": 110, "Error": 112}
FOREVER = 10**9
_ADJECTIVES = ("amazing", "brave", "calm", "daring", "eager", "fancy", "gentle", "happy", "jolly", "keen",
               "lucky", "merry", "nimble", "proud", "quick", "sunny", "tidy", "vivid", "witty", "zesty")
_NOUNS = ("badger", "bison", "crane", "dingo", "eagle", "ferret", "gecko", "heron", "ibex", "jackal",
          "koala", "lemur", "marten", "newt", "otter", "panda", "quail", "raven", "stoat", "tapir")


def url(name: str, project: str = "default") -> str:
    return f"/1.0/instances/{name}" + ("" if project == "default" else f"?project={project}")


def resources(name: str, project: str = "default") -> dict:
    return {"containers": [f"/1.0/containers/{name}"], "instances": [url(name, project)]}


def expand(profiles: list[dict], cfg: dict, devices: dict) -> tuple[dict, dict]:
    """Profiles applied in order, then the instance's own config and devices."""
    ecfg: dict = {}
    edev: dict = {}
    for p in profiles:
        ecfg.update(p["config"])
        edev.update(p["devices"])
    ecfg.update(cfg)
    edev.update(devices)
    return ecfg, edev


def root_pool(devices: dict) -> str | None:
    for dev in devices.values():
        if dev.get("type") == "disk" and dev.get("path") == "/" and not dev.get("source"):
            return dev.get("pool") or None
    return None


@dataclass
class Loaded:
    """One instance record with its expanded config and devices."""
    rec: dict
    config: dict
    devices: dict

    @property
    def name(self) -> str:
        return self.rec["name"]

    @property
    def project(self) -> str:
        return self.rec["project"]

    @property
    def pool(self) -> str:
        pool = root_pool(self.devices)
        if not pool:
            raise BadRequest("Failed to get root disk device: No root device could be found")
        return pool


def autostart_order(inst) -> tuple[int, str]:
    return (-(config.value(config.INSTANCE, inst.config, "boot.autostart.priority") or 0), inst.name)


class Instances:
    def __init__(self, daemon):
        self.d = daemon
        self.db = daemon.db
        self.events = daemon.events
        self.lxcpath = daemon.paths.join("containers")
        self.driver = get_driver("lxc")(self.lxcpath, on_stopped=self._on_stopped_thread,
                                        logpath=daemon.paths.join("logs"))
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._reserved: set[tuple[str, str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping_by_api: set[str] = set()
        self._housekeeping: asyncio.Task | None = None
        self.backups = Backups(self)

    # ---- names and paths ------------------------------------------------------------------

    @staticmethod
    def volume_name(project: str, name: str) -> str:
        return name if project == "default" else f"{project}_{name}"

    def driver_name(self, project: str, name: str) -> str:
        return self.volume_name(project, name)

    def log_dir(self, project: str, name: str) -> str:
        return self.d.paths.join("logs", self.volume_name(project, name))

    def instance_dir(self, inst: Loaded) -> str:
        return self.d.pools.driver(inst.pool).instance_dir(self.volume_name(inst.project, inst.name))

    def rootfs(self, inst: Loaded) -> str:
        return os.path.join(self.instance_dir(inst), "rootfs")

    def lock(self, project: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((project, name), asyncio.Lock())

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

    async def load_all(self, project: str | None) -> list[Loaded]:
        async with self.db.session() as tx:
            recs = await q.get_all(tx, project)
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

    # ---- API representation ---------------------------------------------------------------

    def status(self, inst: Loaded) -> str:
        try:
            return self.driver.status(self.driver_name(inst.project, inst.name))
        except Exception:
            return "Error"

    def render(self, inst: Loaded, status: str | None = None) -> dict:
        status = status or self.status(inst)
        r = inst.rec
        return {
            "architecture": r["architecture"], "config": r["config"], "devices": r["devices"],
            "ephemeral": r["ephemeral"], "profiles": r["profiles"], "stateful": r["stateful"],
            "description": r["description"], "created_at": r["created_at"],
            "expanded_config": inst.config, "expanded_devices": inst.devices, "name": r["name"],
            "status": status, "status_code": STATUS_CODES.get(status, 112),
            "last_used_at": r["last_used_at"], "location": "none", "type": r["type"], "project": r["project"],
        }

    @staticmethod
    def etag_fields(inst: Loaded) -> dict:
        r = inst.rec
        return {"architecture": r["architecture"], "config": r["config"], "devices": r["devices"],
                "ephemeral": r["ephemeral"], "profiles": r["profiles"], "description": r["description"]}

    async def state(self, inst: Loaded) -> dict:
        return await asyncio.to_thread(self._state_blocking, inst)

    def _state_blocking(self, inst: Loaded) -> dict:
        st = self.driver.state(self.driver_name(inst.project, inst.name))
        if st.get("status") == "Stopped":
            st.update({"network": None, "pid": 0, "processes": 0})
        return st

    def _warm_state(self, dname: str) -> None:
        try:
            self.driver.state(dname)
        except Exception:  # only a warm-up: the real read reports errors
            pass

    async def render_all(self, insts: list[Loaded]) -> list[dict]:
        """recursion=2 listings: every state read in one worker thread (many threads only fight
        over the GIL), every snapshot fetched with one query."""
        snaps = await self.snapshots_of_all()
        states = await asyncio.to_thread(lambda: [self._state_blocking(i) for i in insts])
        out = []
        for inst, st in zip(insts, states):
            full = self.render(inst, st.get("status"))
            full["state"] = st
            full["snapshots"] = [self.render_snapshot(inst, s) for s in snaps.get(inst.rec["id"], [])] or None
            full["backups"] = None
            out.append(full)
        return out

    async def render_full(self, inst: Loaded) -> dict:
        """recursion=2 of one instance: with state and snapshots."""
        out = self.render(inst)
        out["state"] = await self.state(inst)
        out["snapshots"] = [self.render_snapshot(inst, s) for s in await self.snapshots(inst)] or None
        out["backups"] = None
        return out

    # ---- the liblxc spec ------------------------------------------------------------------

    def idmap(self, cfg: dict) -> list[IdmapEntry] | None:
        if config.value(config.INSTANCE, cfg, "security.privileged"):
            return None
        # volatile.idmap.next is the container's own map (made at create); raw.idmap goes on top.
        raw = cfg.get("volatile.idmap.next") or cfg.get("volatile.idmap.current")
        base = [IdmapEntry.from_lxd(e) for e in json.loads(raw)] if raw else default_idmap()
        return rawidmap.apply(base, cfg.get("raw.idmap", "")) if cfg.get("raw.idmap") else base

    async def _isolated_idmap(self, size: int) -> list[IdmapEntry]:
        """security.idmap.isolated: a block of `size` host ids no other isolated instance uses,
        taken from root's subordinate range after the first block (as LXD does)."""
        shared = default_idmap()
        uid_range, gid_range = shared[0], shared[1]
        used = {int(i.config["volatile.idmap.base"]) for i in await self.load_all(None)
                if i.config.get("security.idmap.isolated") == "true" and i.config.get("volatile.idmap.base")}
        n = 1
        while (n + 1) * size <= min(uid_range.maprange, gid_range.maprange):
            if uid_range.hostid + n * size not in used:
                return [IdmapEntry(True, False, uid_range.hostid + n * size, 0, size),
                        IdmapEntry(False, True, gid_range.hostid + n * size, 0, size)]
            n += 1
        raise BadRequest("Not enough uid/gid available for the container (security.idmap.isolated)")

    def spec(self, inst: Loaded) -> InstanceSpec:
        logs = self.log_dir(inst.project, inst.name)
        return InstanceSpec(
            name=self.driver_name(inst.project, inst.name), rootfs=self.rootfs(inst), config=inst.config,
            devices=inst.devices, idmap=self.idmap(inst.config),
            log_file=os.path.join(logs, "lxc.log"), console_log_file=os.path.join(logs, "console.log"),
            hostname=inst.name, mounts=list(self.d.instance_mounts(inst)))

    # ---- create ---------------------------------------------------------------------------

    def _random_name(self, taken: set[str]) -> str:
        while True:
            name = f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}"
            if name not in taken:
                return name

    async def create(self, project: str, body: dict, requestor: dict | None):
        """Validate a POST /1.0/instances request; return the operation that creates the instance."""
        itype = body.get("type") or "container"
        if itype == "virtual-machine":   # a project's VM count limit refuses first, as LXD would
            await self.d.limits.check_count(project, itype)
            raise NotImplementedFeature("virtual-machine instances")
        if itype != "container":
            raise BadRequest(f'Invalid instance type "{itype}"')
        existing = set(await self.names(project))
        name = body.get("name") or self._random_name(existing | {n for p, n in self._reserved if p == project})
        check_instance_name(name)
        if name in existing or (project, name) in self._reserved:
            raise Conflict(f'Instance "{name}" already exists')
        cfg = config.validate(config.INSTANCE, body.get("config") or {})
        devices = validate_devices(self.d, body.get("devices"))
        profile_names = body.get("profiles")
        source = body.get("source") or {"type": "none"}
        if profile_names is None:   # LXD 5.0: an image's own profiles list, else the default profile
            from_image = await self._image_profiles(project, source)
            profile_names = ["default"] if from_image is None else from_image
        if not isinstance(profile_names, list) or not all(isinstance(p, str) for p in profile_names):
            raise BadRequest('Invalid value for field "profiles": expected an array of names')
        async with self.db.session() as tx:
            profiles = await self._profiles(tx, project, profile_names)
        ecfg, edev = expand(profiles, cfg, devices)
        pool = root_pool(edev)
        if not pool:
            raise BadRequest("Failed to get root disk device: No root device could be found")
        self.d.pools.driver(pool)  # NotFound when the pool does not exist
        if not isinstance(source, dict):
            raise BadRequest('Invalid value for field "source": expected an object')
        stype = source.get("type") or "none"
        plan: dict = {"type": stype}
        if stype == "image":
            if source.get("server") or source.get("mode") == "pull":
                plan["remote"] = check_source(source)   # downloaded (or reused) by the operation
            else:
                plan["fingerprint"] = await self.d.images.resolve(project, source)
        elif stype == "copy":
            src = source.get("source")
            if not isinstance(src, str) or not src:
                raise BadRequest("No source instance given")
            src_name, _, src_snap = src.partition("/")
            src_project = source.get("project") or project   # container_copy_project
            if not isinstance(src_project, str) or not self.d.projects.known(src_project):
                raise NotFound("Project not found")
            src_inst = await self.load(src_project, src_name)
            if src_snap:
                await self.get_snapshot(src_inst, src_snap)
            plan.update(source=src_inst, snapshot=src_snap, instance_only=bool(source.get("instance_only")))
        elif stype in ("migration", "conversion"):
            raise NotImplementedFeature(f"creating instances by {stype}")
        elif stype != "none":
            raise BadRequest(f'Unknown source type "{stype}"')
        ephemeral = body.get("ephemeral", False)
        if not isinstance(ephemeral, bool):
            raise BadRequest('Invalid value for field "ephemeral": expected boolean')
        copy_of = plan["source"].rec if stype == "copy" else None
        await self.d.restrictions.check_instance(project, name, cfg, devices, profiles, copy_of=copy_of)
        rec = {"project": project, "name": name, "type": "container", "architecture": "x86_64",
               "ephemeral": ephemeral, "stateful": False, "description": body.get("description") or "",
               "config": cfg, "devices": devices, "profiles": profile_names}
        start = body.get("start", False)
        if not isinstance(start, bool):
            raise BadRequest('Invalid value for field "start": expected boolean')
        # Counted and reserved under the project's lock: two creations can't both take the last slot,
        # nor can a project update lower a limit between the check and the reservation.
        async with LOCKS.hold("project", project):
            if (project, name) in self._reserved:
                raise Conflict(f'Instance "{name}" already exists')
            await self.d.limits.check_instance(project, name, "container", cfg, devices, profile_names,
                                               copy_of=copy_of)
            self._reserved.add((project, name))

        async def run(op):
            try:
                async with self.lock(project, name):
                    await self._create(rec, pool, plan, op)
            finally:
                self._reserved.discard((project, name))
            self.events.lifecycle("instance-created", url(name, project), project=project,
                                  context={"storage-pool": pool, "type": "container"}, requestor=requestor)
            if start:
                async with self.lock(project, name):
                    await self.start(await self.load(project, name), requestor)

        return self.d.operations.create(project=project, description="Creating instance",
                                        resources=resources(name, project), run=run)

    async def _image_profiles(self, project: str, source) -> list[str] | None:
        """The profiles of the local image an instance is created from (None for other sources)."""
        if not isinstance(source, dict) or source.get("type") != "image" or source.get("server") \
                or source.get("mode") == "pull":
            return None
        image = await self.d.images.get(project, await self.d.images.resolve(project, source))
        return list(image.get("profiles") or [])

    async def _create(self, rec: dict, pool: str, plan: dict, op) -> None:
        project, name = rec["project"], rec["name"]
        drv = self.d.pools.driver(pool)
        vol = self.volume_name(project, name)
        cfg = rec["config"]
        if plan["type"] == "image":
            if plan.get("remote") is not None:
                plan["fingerprint"] = await self.d.image_cache.for_instance(project, plan["remote"], op)
            fp = plan["fingerprint"]
            await self.d.images.ensure_unpacked(fp, drv)
            image = await self.d.images.get(project, fp)
            rec["architecture"] = image.get("architecture") or "x86_64"
            for k, v in (image.get("properties") or {}).items():
                if config.keys.valid_key_name(f"image.{k}"):   # a property from an image's metadata.yaml
                    cfg.setdefault(f"image.{k}", v)
            cfg["volatile.base_image"] = fp
            cfg["volatile.apply_template"] = "create"
            op.update_metadata({"create_instance_from_image_unpack_progress": "Unpack: 100%"})
            await asyncio.to_thread(drv.create_instance_from_image, vol, fp)
            await self.d.images.mark_used(project, fp)
        elif plan["type"] == "copy":
            src: Loaded = plan["source"]
            src_dir = (self.snapshot_dir(src, plan["snapshot"]) if plan["snapshot"] else self.instance_dir(src))
            if not plan["snapshot"] and self.status(src) != "Stopped":
                log.info("copying running instance %s (stateless copy)", src.name)
            for k, v in src.rec["config"].items():
                if not k.startswith("volatile.") or k == "volatile.base_image":
                    cfg.setdefault(k, v)
            if not rec["devices"]:
                rec["devices"] = dict(src.rec["devices"])
            rec["architecture"] = src.rec["architecture"]
            cfg["volatile.apply_template"] = "copy"
            await asyncio.to_thread(drv.copy_tree, src_dir, drv.instance_dir(vol))
            if not plan["snapshot"] and not plan["instance_only"]:
                plan["copy_snapshots"] = await self.snapshots(src)
        else:
            await asyncio.to_thread(drv.create_instance_empty, vol)
        try:
            cfg["volatile.uuid"] = str(uuid.uuid4())
            rec["created_at"], rec["last_used_at"] = timeutil.now(), timeutil.EPOCH
            snaps = plan.get("copy_snapshots") or []
            for s in snaps:
                await asyncio.to_thread(drv.copy_tree, self.snapshot_dir(plan["source"], s["name"]),
                                        drv.snapshot_dir(vol, s["name"]))
            await self.register(rec, snaps)
        except BaseException:
            await asyncio.to_thread(drv.delete_tree, drv.instance_dir(vol))
            await asyncio.to_thread(drv.delete_tree, os.path.dirname(drv.snapshot_dir(vol, "x")))
            async with self.db.transaction() as tx:
                await q.delete(tx, project, name)
            raise

    async def register(self, rec: dict, snaps: list[dict]) -> None:
        """A new instance whose volume (and snapshot volumes) are in place: its idmap, its records
        (and its snapshots'), its driver config. Also the last step of `lxc import`."""
        project, name, cfg = rec["project"], rec["name"], rec["config"]
        cfg.setdefault("volatile.uuid", str(uuid.uuid4()))
        async with self.db.session() as tx:
            profiles = await self._profiles(tx, project, rec["profiles"])
        ecfg, _ = expand(profiles, cfg, rec["devices"])
        if config.value(config.INSTANCE, ecfg, "security.idmap.isolated") and \
                not config.value(config.INSTANCE, ecfg, "security.privileged"):
            idmap = await self._isolated_idmap(config.value(config.INSTANCE, ecfg, "security.idmap.size"))
        else:
            idmap = self.idmap(ecfg)
        if idmap is not None:
            cfg["volatile.idmap.base"] = str(idmap[0].hostid)
            cfg["volatile.idmap.next"] = json.dumps([e.to_lxd() for e in idmap], separators=(",", ":"))
            cfg["volatile.last_state.idmap"] = "[]"
        async with self.db.transaction() as tx:
            if await q.get(tx, project, name) is not None:
                raise Conflict(f'Instance "{name}" already exists')
            new_id = await q.create(tx, rec)
            for s in snaps:
                await q.create_snapshot(tx, new_id, s)
        inst = await self.load(project, name)
        await asyncio.to_thread(self.driver.create, self.spec(inst))
        await asyncio.to_thread(layout.sync, self, inst)
        await layout.write_backup_file(self, project, name)

    # ---- update ---------------------------------------------------------------------------

    # PUT/PATCH: corral/instance/update.py (validate -> apply live -> commit, under this lock).

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

    # ---- state changes --------------------------------------------------------------------

    async def start(self, inst: Loaded, requestor: dict | None = None) -> None:
        status = self.status(inst)
        if status == "Running":
            raise BadRequest("The instance is already running")
        if status == "Frozen":
            raise BadRequest("The instance is paused")
        if inst.rec.get("load_error"):
            raise BadRequest(f"The instance's stored configuration cannot be loaded ({inst.rec['load_error']}): "
                             "replace it (PUT) or delete the instance")
        await startup_snapshot(self, inst)   # snapshots.schedule=@startup
        triggers = [t for t in (inst.config.get("volatile.apply_template"),) if t] + ["start"]
        rootfs = self.rootfs(inst)
        context = {"instance": {"name": inst.name, "architecture": inst.rec["architecture"],
                                "privileged": str(bool(config.value(config.INSTANCE, inst.config,
                                                                    "security.privileged"))).lower(),
                                "ephemeral": str(inst.rec["ephemeral"]).lower()},
                   "config": inst.config, "devices": inst.devices}
        for trigger in triggers:
            await asyncio.to_thread(render_templates, self.instance_dir(inst), rootfs, trigger, context)
        await live_keys.load_kernel_modules(inst.config)
        spec = self.spec(inst)
        devices = instance_devices(self.d, inst)
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
            if self.status(inst) != "Stopped":
                await asyncio.to_thread(self.driver.stop, spec.name, True, 0)
            await self._stop_devices(started)
            raise
        changes: dict[str, str | None] = {"volatile.last_state.power": "RUNNING", "volatile.apply_template": None}
        if spec.idmap is not None:
            changes["volatile.idmap.current"] = json.dumps([e.to_lxd() for e in spec.idmap], separators=(",", ":"))
            changes["volatile.last_state.idmap"] = changes["volatile.idmap.current"]
        await self.set_volatile(inst.project, inst.name, changes, last_used=timeutil.now())
        # Open the state readers (netlink into the new netns) now, off the request path, so the
        # first listing after a start does not pay for it.
        asyncio.get_running_loop().run_in_executor(None, self._warm_state, spec.name)
        self.events.lifecycle("instance-started", url(inst.name, inst.project), project=inst.project,
                              requestor=requestor)

    async def stop(self, inst: Loaded, *, force: bool, timeout: float, requestor: dict | None = None,
                   event: bool = True) -> None:
        dname = self.driver_name(inst.project, inst.name)
        status = self.status(inst)
        if status == "Stopped":
            raise BadRequest("The instance is already stopped")
        if status == "Frozen":
            if not force:
                raise BadRequest("The instance is paused")
            await asyncio.to_thread(self.driver.unfreeze, dname)
        self._stopping_by_api.add(dname)
        try:
            t = FOREVER if timeout is None or timeout < 0 else int(timeout)
            await asyncio.to_thread(self.driver.stop, dname, force or t == 0, t)
        finally:
            self._stopping_by_api.discard(dname)
        devices = instance_devices(self.d, inst, tolerant=True)
        await self._stop_devices(devices)
        await release_links(self.driver.phys_links(dname), wait=self._unreadable(inst, devices))
        await self.set_volatile(inst.project, inst.name, {"volatile.last_state.power": "STOPPED"})
        if event:
            self.events.lifecycle("instance-stopped", url(inst.name, inst.project), project=inst.project,
                                  requestor=requestor)
        if inst.rec["ephemeral"]:
            await self._delete(inst, requestor)

    async def change_state(self, project: str, name: str, body: dict, requestor: dict | None):
        action = body.get("action")
        descriptions = {"start": "Starting instance", "stop": "Stopping instance", "restart": "Restarting instance",
                        "freeze": "Freezing instance", "unfreeze": "Unfreezing instance"}
        if action not in descriptions:
            raise BadRequest(f'Unknown action "{action}"')
        if body.get("stateful"):
            raise NotImplementedFeature("stateful stop/start (CRIU)")
        force = bool(body.get("force"))
        timeout = body.get("timeout", -1)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise BadRequest('Invalid value for field "timeout": expected integer')
        await self.load(project, name)   # 404 now rather than a failed operation

        async def run(op):
            async with self.lock(project, name):
                cur = await self.load(project, name)
                await self._do_state(cur, action, force, timeout, requestor)

        return self.d.operations.create(project=project, description=descriptions[action],
                                        resources={"instances": [url(name, project)]}, run=run)

    async def _do_state(self, inst: Loaded, action: str, force: bool, timeout: float, requestor) -> None:
        dname = self.driver_name(inst.project, inst.name)
        if action == "start":
            await self.start(inst, requestor)
        elif action == "stop":
            await self.stop(inst, force=force, timeout=timeout, requestor=requestor)
        elif action == "restart":
            if self.status(inst) != "Stopped":
                ephemeral = inst.rec["ephemeral"]
                inst.rec["ephemeral"] = False   # a restart never deletes an ephemeral instance
                await self.stop(inst, force=force, timeout=timeout, event=False)
                inst.rec["ephemeral"] = ephemeral
            await self.start(await self.load(inst.project, inst.name))
            self.events.lifecycle("instance-restarted", url(inst.name, inst.project), project=inst.project,
                                  requestor=requestor)
        elif action == "freeze":
            if self.status(inst) != "Running":
                raise BadRequest("The instance isn't running")
            await asyncio.to_thread(self.driver.freeze, dname)
            self.events.lifecycle("instance-paused", url(inst.name, inst.project), project=inst.project,
                                  requestor=requestor)
        elif action == "unfreeze":
            if self.status(inst) != "Frozen":
                raise BadRequest("The instance isn't paused")
            await asyncio.to_thread(self.driver.unfreeze, dname)
            self.events.lifecycle("instance-resumed", url(inst.name, inst.project), project=inst.project,
                                  requestor=requestor)

    @staticmethod
    def _unreadable(inst: Loaded, devices) -> float:
        """Seconds to wait for NICs liblxc gives back: only when the record or a device could not be
        read (their devices did not clean up; normally the host end is gone already)."""
        wanted = [c for c in inst.devices.values() if c.get("type") != "none"]
        return 2.0 if inst.rec.get("load_error") or len(devices) < len(wanted) else 0.0

    async def _stop_devices(self, devices) -> None:
        for dev in reversed(devices):
            try:
                await dev.stop()
            except Exception:
                log.exception("instance %s: stopping device %s failed", dev.inst.name, dev.name)

    def _on_stopped_thread(self, dname: str) -> None:
        """The driver saw a container stop (from inside, or by us): called on a watcher thread."""
        if self._loop is not None and dname not in self._stopping_by_api:
            asyncio.run_coroutine_threadsafe(self._on_stopped(dname), self._loop)

    async def _on_stopped(self, dname: str) -> None:
        for inst in await self.load_all(None):
            if self.driver_name(inst.project, inst.name) != dname:
                continue
            async with self.lock(inst.project, inst.name):
                if self.status(inst) != "Stopped":
                    return
                devices = instance_devices(self.d, inst, tolerant=True)
                await self._stop_devices(devices)
                await release_links(self.driver.phys_links(dname), wait=self._unreadable(inst, devices))
                await self.set_volatile(inst.project, inst.name, {"volatile.last_state.power": "STOPPED"})
                self.events.lifecycle("instance-shutdown", url(inst.name, inst.project), project=inst.project)
                if inst.rec["ephemeral"]:
                    await self._delete(inst, None)
            return

    # ---- rename and delete ----------------------------------------------------------------

    async def rename(self, project: str, name: str, body: dict, requestor: dict | None):
        if body.get("pool") and not body.get("project"):   # "live" is sent by lxc; a move needs a stopped instance
            return await poolmove.move(self, project, name, body, requestor)
        if body.get("project") and not body.get("target"):   # instance_project_move (lxc sends migration=true)
            return await projectmove.move(self, project, name, body, requestor)
        if body.get("migration") or body.get("pool") or body.get("live"):
            raise NotImplementedFeature("moving instances between servers")
        new = check_instance_name(body.get("name"))
        inst = await self.load(project, name)
        if self.status(inst) != "Stopped":
            raise BadRequest("Renaming of running instance not allowed")
        if new in await self.names(project) or (project, new) in self._reserved:
            raise Conflict(f'Name "{new}" already in use')

        async def run(op):
            async with self.lock(project, name):
                await self._rename(await self.load(project, name), new)
            self.events.lifecycle("instance-renamed", url(new, project), project=project,
                                  context={"old_name": name}, requestor=requestor)

        return self.d.operations.create(project=project, description="Renaming instance",
                                        resources=resources(name, project), run=run)

    async def _rename(self, inst: Loaded, new: str) -> None:
        drv = self.d.pools.driver(inst.pool)
        old_vol, new_vol = self.volume_name(inst.project, inst.name), self.volume_name(inst.project, new)
        moves = [(drv.instance_dir(old_vol), drv.instance_dir(new_vol)),
                 (os.path.dirname(drv.snapshot_dir(old_vol, "x")), os.path.dirname(drv.snapshot_dir(new_vol, "x"))),
                 (self.log_dir(inst.project, inst.name), self.log_dir(inst.project, new)),
                 (self.d.paths.join("backups", "instances", old_vol), self.d.paths.join("backups", "instances", new_vol))]
        await asyncio.to_thread(self.driver.delete, self.driver_name(inst.project, inst.name))
        done = []
        try:
            for a, b in moves:
                if os.path.exists(a):
                    os.rename(a, b)
                    done.append((a, b))
            async with self.db.transaction() as tx:
                await q.rename(tx, inst.project, inst.name, new)
                await qs.rename_volume(tx, inst.pool, inst.project, "container", inst.name, new)
        except BaseException:
            for a, b in reversed(done):
                os.rename(b, a)
            await asyncio.to_thread(self.driver.create, self.spec(inst))   # as it was
            raise
        renamed = await self.load(inst.project, new)
        await asyncio.to_thread(layout.remove, self, inst.project, inst.name)
        await asyncio.to_thread(self.driver.create, self.spec(renamed))
        await asyncio.to_thread(layout.sync, self, renamed)
        await layout.write_backup_file(self, inst.project, new)

    async def delete(self, project: str, name: str, requestor: dict | None):
        inst = await self.load(project, name)
        if self.status(inst) != "Stopped":
            raise BadRequest("Instance is running")
        if config.value(config.INSTANCE, inst.config, "security.protection.delete"):
            raise BadRequest("Instance is protected")

        async def run(op):
            async with self.lock(project, name):
                await self._delete(await self.load(project, name), requestor)

        return self.d.operations.create(project=project, description="Deleting instance",
                                        resources=resources(name, project), run=run)

    async def _delete(self, inst: Loaded, requestor: dict | None) -> None:
        vol = self.volume_name(inst.project, inst.name)
        drv = self.d.pools.driver(root_pool(inst.devices) or self.d.pools.holding_instance(vol))
        await release_links(self.driver.phys_links(self.driver_name(inst.project, inst.name)))
        await asyncio.to_thread(self.driver.delete, self.driver_name(inst.project, inst.name))
        await asyncio.to_thread(layout.remove, self, inst.project, inst.name)
        # The record goes first: a crash half-way leaves files the start-up reconciliation removes,
        # never a record that points at nothing (backup.yaml even before: a volume without one is not
        # taken for an instance whose records were lost, see instance/backup_yaml.py).
        await asyncio.to_thread(backup_yaml.forget, drv.instance_dir(vol))
        async with self.db.transaction() as tx:
            await q.delete(tx, inst.project, inst.name)
            await qs.delete_volume(tx, drv.pool, inst.project, "container", inst.name)   # its volume's record
        await asyncio.to_thread(drv.delete_tree, drv.instance_dir(vol))
        await asyncio.to_thread(drv.delete_tree, os.path.dirname(drv.snapshot_dir(vol, "x")))
        await asyncio.to_thread(shutil.rmtree, self.log_dir(inst.project, inst.name), True)
        await asyncio.to_thread(self.backups.delete_all, inst.project, inst.name)
        self._locks.pop((inst.project, inst.name), None)
        self.events.lifecycle("instance-deleted", url(inst.name, inst.project), project=inst.project,
                              requestor=requestor)

    # ---- snapshots ------------------------------------------------------------------------

    def snapshot_dir(self, inst: Loaded, snap: str) -> str:
        return self.d.pools.driver(inst.pool).snapshot_dir(self.volume_name(inst.project, inst.name), snap)

    async def snapshots(self, inst: Loaded) -> list[dict]:
        async with self.db.session() as tx:
            return await q.snapshots(tx, inst.rec["id"])

    async def snapshots_of_all(self) -> dict[int, list[dict]]:
        async with self.db.session() as tx:
            return await q.snapshots_of_all(tx)

    async def get_snapshot(self, inst: Loaded, snap: str) -> dict:
        async with self.db.session() as tx:
            s = await q.snapshot(tx, inst.rec["id"], snap)
        if s is None:
            raise NotFound("Snapshot not found")
        return s

    def render_snapshot(self, inst: Loaded, s: dict) -> dict:
        return {"architecture": s["architecture"], "config": s["config"], "created_at": s["created_at"],
                "description": s["description"], "devices": s["devices"], "ephemeral": False,
                "expanded_config": {**inst.config, **s["config"]}, "expanded_devices": {**inst.devices, **s["devices"]},
                "expires_at": s["expires_at"], "last_used_at": timeutil.ZERO,
                "name": s["name"], "profiles": s["profiles"], "size": -1, "stateful": s["stateful"]}

    async def _snapshot_name(self, inst: Loaded) -> str:
        taken = {s["name"] for s in await self.snapshots(inst)}
        try:
            return next_snapshot_name(inst.config.get("snapshots.pattern") or "snap%d", taken)
        except ValueError as e:
            raise BadRequest(f'Invalid value for "snapshots.pattern": {e}') from None

    async def create_snapshot(self, project: str, name: str, body: dict, requestor: dict | None):
        inst = await self.load(project, name)
        await self.d.restrictions.check_snapshot(project)
        if body.get("stateful"):
            raise NotImplementedFeature("stateful snapshots (CRIU)")
        snap = body.get("name") or await self._snapshot_name(inst)
        check_entity_name("snapshot", snap)
        if any(s["name"] == snap for s in await self.snapshots(inst)):
            raise Conflict(f'Snapshot "{snap}" already exists')
        expires_at = body.get("expires_at") or self._default_expiry(inst)

        async def run(op):
            async with self.lock(project, name):
                await self.take_snapshot(await self.load(project, name), snap, expires_at, body.get("description") or "")
            self.events.lifecycle("instance-snapshot-created", f"/1.0/instances/{name}/snapshots/{snap}",
                                  project=project, requestor=requestor)

        return self.d.operations.create(project=project, description="Snapshotting instance",
                                        resources={**resources(name, project),
                                                   "instances_snapshots": [f"/1.0/instances/{name}/snapshots/{snap}"]},
                                        run=run)

    async def take_snapshot(self, cur: Loaded, snap: str, expires_at: str, description: str = "") -> None:
        """Copy the instance's volume to snapshot `snap` and record it; the caller holds the instance lock."""
        project, name = cur.project, cur.name
        drv = self.d.pools.driver(cur.pool)
        dst = self.snapshot_dir(cur, snap)
        running = self.status(cur) == "Running"
        dname = self.driver_name(project, name)
        # A consistent copy: freeze the container's processes while copying. The marker
        # lets a restarted daemon thaw a container this one froze and did not thaw.
        with freeze_marker(self.d.paths, dname) if running else contextlib.nullcontext():
            if running:
                await asyncio.to_thread(self.driver.freeze, dname)
            try:
                await asyncio.to_thread(drv.copy_tree, self.instance_dir(cur), dst)
            finally:
                if running:
                    await asyncio.to_thread(self.driver.unfreeze, dname)
        try:
            async with self.db.transaction() as tx:
                await q.create_snapshot(tx, cur.rec["id"], {
                    "name": snap, "created_at": timeutil.now(), "expires_at": expires_at,
                    "description": description, "architecture": cur.rec["architecture"],
                    "config": cur.rec["config"], "devices": cur.rec["devices"], "profiles": cur.rec["profiles"]})
        except BaseException:
            await asyncio.to_thread(drv.delete_tree, dst)
            raise
        await asyncio.to_thread(layout.sync, self, cur)
        await layout.write_backup_file(self, project, name)

    def _default_expiry(self, inst: Loaded) -> str:
        seconds = config.value(config.INSTANCE, inst.config, "snapshots.expiry")
        return timeutil.after(seconds) if seconds else timeutil.ZERO

    async def update_snapshot(self, project: str, name: str, snap: str, body: dict) -> None:
        inst = await self.load(project, name)
        s = await self.get_snapshot(inst, snap)
        async with self.db.transaction() as tx:
            await q.update_snapshot(tx, inst.rec["id"], snap, expires_at=body.get("expires_at") or s["expires_at"],
                                    description=body.get("description", s["description"]) or "")

    async def rename_snapshot(self, project: str, name: str, snap: str, body: dict, requestor: dict | None):
        if body.get("migration"):
            raise NotImplementedFeature("snapshot migration")
        new = check_entity_name("snapshot", body.get("name"))
        inst = await self.load(project, name)
        await self.get_snapshot(inst, snap)
        if any(s["name"] == new for s in await self.snapshots(inst)):
            raise Conflict(f'Name "{new}" already in use')

        async def run(op):
            async with self.lock(project, name):
                cur = await self.load(project, name)
                os.rename(self.snapshot_dir(cur, snap), self.snapshot_dir(cur, new))
                try:
                    async with self.db.transaction() as tx:
                        await q.rename_snapshot(tx, cur.rec["id"], snap, new)
                except BaseException:
                    os.rename(self.snapshot_dir(cur, new), self.snapshot_dir(cur, snap))
                    raise
                await layout.write_backup_file(self, project, name)
            self.events.lifecycle("instance-snapshot-renamed", f"/1.0/instances/{name}/snapshots/{new}",
                                  project=project, context={"old_name": snap}, requestor=requestor)

        return self.d.operations.create(project=project, description="Renaming snapshot",
                                        resources=resources(name, project), run=run)

    async def delete_snapshot(self, project: str, name: str, snap: str, requestor: dict | None):
        inst = await self.load(project, name)
        await self.get_snapshot(inst, snap)

        async def run(op):
            async with self.lock(project, name):
                cur = await self.load(project, name)
                async with self.db.transaction() as tx:
                    await q.delete_snapshot(tx, cur.rec["id"], snap)
                drv = self.d.pools.driver(cur.pool)
                await asyncio.to_thread(drv.delete_tree, self.snapshot_dir(cur, snap))
                await layout.write_backup_file(self, project, name)
            self.events.lifecycle("instance-snapshot-deleted", f"/1.0/instances/{name}/snapshots/{snap}",
                                  project=project, requestor=requestor)

        return self.d.operations.create(project=project, description="Deleting snapshot",
                                        resources=resources(name, project), run=run)

    async def restore(self, project: str, name: str, snap: str, requestor: dict | None):
        inst = await self.load(project, name)
        if "/" in snap:
            snap = snap.split("/", 1)[1]
        await self.d.restrictions.check_restore(project, name, await self.get_snapshot(inst, snap))

        async def run(op):
            async with self.lock(project, name):
                cur = await self.load(project, name)
                s = await self.get_snapshot(cur, snap)
                was_running = self.status(cur) == "Running"
                if was_running:
                    await self.stop(cur, force=True, timeout=0, event=False)
                drv = self.d.pools.driver(cur.pool)
                live, old = self.instance_dir(cur), self.instance_dir(cur) + ".restore-old"
                await asyncio.to_thread(drv.delete_tree, old)
                await asyncio.to_thread(drv.copy_tree, self.snapshot_dir(cur, snap), live + ".restore-new")
                os.rename(live, old)
                os.rename(live + ".restore-new", live)
                await asyncio.to_thread(drv.delete_tree, old)
                cfg = {k: v for k, v in s["config"].items() if not k.startswith("volatile.")}
                cfg.update({k: v for k, v in cur.rec["config"].items() if k.startswith("volatile.")})
                async with self.db.transaction() as tx:
                    await q.update(tx, project, name, {"architecture": s["architecture"], "ephemeral": cur.rec["ephemeral"],
                                                        "description": cur.rec["description"], "config": cfg,
                                                        "devices": s["devices"], "profiles": s["profiles"]})
                await layout.write_backup_file(self, project, name)
                if was_running:
                    await self.start(await self.load(project, name))
            self.events.lifecycle("instance-restored", url(name, project), project=project,
                                  context={"snapshot": snap}, requestor=requestor)

        return self.d.operations.create(project=project, description="Restoring snapshot",
                                        resources=resources(name, project), run=run)

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
                src = self.snapshot_dir(inst, snap)
            else:
                if self.status(inst) != "Stopped":
                    raise BadRequest("The instance is currently running. Use --force to have it stopped and restarted")
                src = self.instance_dir(inst)
        except BaseException:
            lock.release()
            raise
        props = {k[len("image."):]: v for k, v in inst.config.items() if k.startswith("image.")}
        return src, props, lock.release

    # ---- daemon start-up ------------------------------------------------------------------

    async def startup(self) -> None:
        """Re-attach to running containers, start boot.autostart ones, remove stopped ephemerals."""
        self._loop = asyncio.get_running_loop()
        self.d.images.publish_source = self.publish_source
        await asyncio.to_thread(layout.record_patch, self)
        for inst in await self.load_all(None):
            try:   # LXD's data dir layout (also moves an older Corral's layout over, running or not)
                await asyncio.to_thread(layout.sync, self, inst)
                await layout.write_backup_file(self, inst.project, inst.name)
            except Exception:
                log.exception("instance %s: data directory links", inst.name)
        # Highest boot.autostart.priority first; boot.autostart.delay seconds after each start (LXD).
        for inst in sorted(await self.load_all(None), key=autostart_order):
            try:
                status = self.status(inst)
                if status != "Stopped":
                    continue
                if inst.rec["ephemeral"]:
                    await self._delete(inst, None)
                    continue
                # LXD's rule: boot.autostart=true, or unset and the instance was running before.
                auto = inst.config.get("boot.autostart")
                was_running = inst.config.get("volatile.last_state.power") == "RUNNING"
                if auto == "true" or (auto is None and was_running):
                    await self.start(inst)
                    await asyncio.sleep(config.value(config.INSTANCE, inst.config, "boot.autostart.delay") or 0)
            except CorralError as e:
                log.warning("instance %s: %s", inst.name, e.message)
            except Exception:
                log.exception("instance %s: start-up handling failed", inst.name)

        self._housekeeping = asyncio.get_running_loop().create_task(self._housekeep())

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                await self.prune_expired_snapshots()
            except Exception:
                log.exception("pruning expired snapshots failed")

    async def prune_expired_snapshots(self) -> int:
        """Delete snapshots whose expires_at has passed (snapshots.expiry / expires_at)."""
        now = datetime.now(timezone.utc)
        by_id = await self.snapshots_of_all()
        pruned = 0
        for inst in await self.load_all(None):
            for s in by_id.get(inst.rec["id"], []):
                exp = s["expires_at"]
                if not exp or exp.startswith(("0001-", "1970-")) or timeutil.parse(exp) > now:
                    continue
                op = await self.delete_snapshot(inst.project, inst.name, s["name"], None)
                await op.wait(None)
                pruned += 1
        return pruned

    async def shutdown(self) -> None:
        """Containers keep running when the daemon stops (as with LXD's daemon restart)."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        self._loop = None
