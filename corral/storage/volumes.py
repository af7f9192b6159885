"""Storage volumes with LXD's semantics: custom volumes (records in dqlite, one directory or
subvolume each) with snapshots, copies and moves between pools; instance and image volumes are
listed from the instances and the images unpacked in a pool.

A volume is made on disk first and recorded last, so a failure or a crash half-way never leaves a
record pointing at nothing; the start-up reconciliation (storage/reconcile.py) removes the rest.
"""
from __future__ import annotations

import asyncio
import json
import os
import re

from corral import timeutil
from corral.db.queries import storage as q
from corral.config.keys import is_true
from corral.config.storage import check_volume
from corral.errors import BadRequest, Conflict, NotFound, NotImplementedFeature
from corral.instance.idmap import IdmapEntry
from corral.names import check_entity_name
from corral.storage import instvolumes
from corral.storage.shift import shift_tree
from corral.storage.sizes import parse_size
from corral.storage.volnames import vol_url
from corral.storage.volsnapshots import VolumeSnapshots

TYPES = ("custom", "container", "image", "virtual-machine")


def check_volume_config(config, driver: str = "dir", content_type: str = "filesystem",
                        volume: str = "") -> dict[str, str]:
    """Every key against the driver's volume keys (corral/config/storage.py), with LXD's errors."""
    return check_volume(driver, config, content_type, volume)


def disk_key(project: str, name: str) -> str:
    return f"{project}_{name}"


class Volumes(VolumeSnapshots):
    def __init__(self, daemon):
        self.d = daemon
        self.db = daemon.db
        self.events = daemon.events

    # ---- lookups ------------------------------------------------------------------------------

    def _pool(self, pool: str):
        drv = self.d.pools.driver(pool)
        if not self.d.pools.available(pool):
            raise BadRequest(f'Storage pool "{pool}" is unavailable')
        return drv

    async def custom(self, pool: str, project: str, name: str) -> dict:
        self.d.pools.driver(pool)
        async with self.db.session() as tx:
            v = await q.volume(tx, pool, project, "custom", name)
        if v is None:
            raise NotFound("Storage volume not found")
        return v

    def path(self, v: dict) -> str:
        return self.d.pools.driver(v["pool"]).custom_dir(disk_key(v["project"], v["name"]))

    def snap_path(self, v: dict, snap: str) -> str:
        return self.d.pools.driver(v["pool"]).custom_snapshot_dir(disk_key(v["project"], v["name"]), snap)

    async def used_by(self, pool: str, project: str, name: str) -> list[str]:
        """Instances and profiles with a disk device using this custom volume: those of `project`
        and of the projects whose custom volumes are `project`'s (features.storage.volumes=false)."""
        out = []
        projects = self.d.projects.sharing("storage.volumes", project)
        for p in projects:
            for inst in await self.d.instances.load_all(p):
                if any(dev.get("type") == "disk" and dev.get("pool") == pool and dev.get("source") == name
                       for dev in inst.devices.values()):
                    out.append(f"/1.0/instances/{inst.name}" + ("" if p == "default" else f"?project={p}"))
        for p in projects:
            if self.d.projects.holder("profiles", p) != p:
                continue   # its profiles are the default project's, listed there
            for prof in await self.d.profiles.get_all(p):
                if any(dev.get("type") == "disk" and dev.get("pool") == pool and dev.get("source") == name
                       for dev in prof["devices"].values()):
                    out.append(f"/1.0/profiles/{prof['name']}" + ("" if p == "default" else f"?project={p}"))
        return out

    async def used_by_pool(self, pool: str) -> list[str]:
        async with self.db.session() as tx:
            return [vol_url(pool, "custom", v["name"], v["project"]) for v in await q.volumes(tx, pool)
                    if v["type"] == "custom"]

    # ---- listing ------------------------------------------------------------------------------

    def _render(self, v: dict, type_: str, used_by: list[str]) -> dict:
        return {"config": v.get("config", {}), "description": v.get("description", ""), "name": v["name"],
                "type": type_, "used_by": used_by, "location": "none", "content_type": "filesystem",
                "project": v.get("project", "default"), "created_at": v.get("created_at", timeutil.ZERO)}

    async def list(self, pool: str, project: str, type_: str | None = None) -> list[dict]:
        drv = self.d.pools.driver(pool)
        out = []
        if type_ in (None, "container"):
            edited = await instvolumes.records(self.db, pool, project)
            for inst in await self.d.instances.load_all(project):
                if inst.devices and _root_pool(inst.devices) == pool:
                    rec = edited.get(inst.name, {})
                    out.append(self._render({**rec, "name": inst.name, "project": inst.project}, "container",
                                            [f"/1.0/instances/{inst.name}" +
                                             ("" if project == "default" else f"?project={project}")]))
        if type_ in (None, "image") and drv.optimized_images and self.d.pools.available(pool):
            for fp in await asyncio.to_thread(_listdir, os.path.join(drv.path, "images")):
                if re.fullmatch(r"[0-9a-f]{64}", fp):
                    out.append(self._render({"name": fp, "project": project}, "image", [f"/1.0/images/{fp}"]))
        if type_ in (None, "custom"):
            holder = self.d.projects.holder("storage.volumes", project)
            async with self.db.session() as tx:
                vols = [v for v in await q.volumes(tx, pool, holder) if v["type"] == "custom"]
            for v in vols:
                out.append(self._render(v, "custom", await self.used_by(pool, holder, v["name"])))
        return out

    async def get(self, pool: str, project: str, type_: str, name: str) -> dict:
        if type_ not in TYPES:
            raise BadRequest(f'Invalid storage volume type "{type_}"')
        if type_ == "custom":
            v = await self.custom(pool, project, name)
            return self._render(v, "custom", await self.used_by(pool, project, name))
        for v in await self.list(pool, project, type_):
            if v["name"] == name:
                return v
        raise NotFound("Storage volume not found")

    def _volume_dir(self, pool: str, project: str, type_: str, name: str) -> str:
        drv = self.d.pools.driver(pool)
        if type_ == "custom":
            return drv.custom_dir(disk_key(project, name))
        if type_ == "container":
            return drv.instance_dir(self.d.instances.volume_name(project, name))
        return drv.image_dir(name)

    async def state(self, pool: str, project: str, type_: str, name: str) -> dict:
        v = await self.get(pool, project, type_, name)
        drv = self._pool(pool)
        used = await asyncio.to_thread(drv.usage, self._volume_dir(pool, project, type_, name))
        size = v["config"].get("size")
        return {"usage": {"used": used, "total": parse_size(size) if size else -1}}

    # ---- create, copy -------------------------------------------------------------------------

    async def create(self, pool: str, project: str, body: dict, type_: str | None, requestor):
        """POST .../volumes[/{type}]: returns None (done, sync) or an operation (copies)."""
        vtype = body.get("type") or type_ or "custom"
        if type_ and body.get("type") and body["type"] != type_:
            raise BadRequest("Volume type in the URL and the request body differ")
        if vtype != "custom":
            raise BadRequest(f'Storage volumes of type "{vtype}" cannot be created directly')
        if (body.get("content_type") or "filesystem") != "filesystem":
            if body.get("content_type") == "block":
                raise NotImplementedFeature("block custom volumes")
            raise BadRequest(f'Invalid content type "{body.get("content_type")}"')
        name = check_entity_name("storage volume", body.get("name"))
        drv = self._pool(pool)
        description = body.get("description") or ""
        if not isinstance(description, str):
            raise BadRequest('Invalid value for field "description": expected string')
        config = check_volume_config(body.get("config") or {}, self.d.pools.driver(pool).name,
                                     volume=disk_key(project, name))
        config = {k: v for k, v in config.items() if not k.startswith("volatile.")}
        for k, v in drv.config.items():   # the pool's volume.* keys are the defaults
            if k.startswith("volume.") and v:
                config.setdefault(k[len("volume."):], v)
        if config.get("size"):
            await asyncio.to_thread(drv.check_size_supported)
        async with self.db.session() as tx:
            if await q.volume(tx, pool, project, "custom", name) is not None:
                raise Conflict("Volume by that name already exists")
        await self.d.limits.check_volume(project, pool, name, config)
        source = body.get("source") or {}
        if not isinstance(source, dict):
            raise BadRequest('Invalid value for field "source": expected an object')
        stype = source.get("type") or ""
        rec = {"pool": pool, "project": project, "type": "custom", "name": name, "description": description,
               "config": config, "created_at": timeutil.now()}
        if stype == "":
            await self._make(rec, None, [])
            self.events.lifecycle("storage-volume-created", vol_url(pool, "custom", name, project),
                                  project=project, requestor=requestor)
            return None
        if stype == "migration":
            raise NotImplementedFeature("storage volume migration between servers")
        if stype != "copy":
            raise BadRequest(f'Unknown source type "{stype}"')
        src_pool = source.get("pool") or pool
        src_project = self.d.projects.holder("storage.volumes", source.get("project") or project)
        src_name, _, src_snap = (source.get("name") or "").partition("/")
        src = await self.custom(src_pool, src_project, src_name)
        self._pool(src_pool)
        snaps = []
        async with self.db.session() as tx:
            all_snaps = await q.volume_snapshots(tx, src["id"])
        if src_snap:
            if not any(s["name"] == src_snap for s in all_snaps):
                raise NotFound("Storage volume snapshot not found")
        elif not source.get("volume_only"):
            snaps = all_snaps
        if not body.get("config"):
            rec["config"] = {k: v for k, v in src["config"].items() if not k.startswith("volatile.")}
        for k in ("volatile.idmap.last",):
            if k in src["config"]:
                rec["config"][k] = src["config"][k]
        await self.d.limits.check_volume(project, pool, name, rec["config"])   # the copy's own size
        src_dir = self.snap_path(src, src_snap) if src_snap else self.path(src)

        async def run(op):
            await self._make(rec, src_dir, [(s, self.snap_path(src, s["name"])) for s in snaps])
            self.events.lifecycle("storage-volume-created", vol_url(pool, "custom", name, project),
                                  project=project, requestor=requestor)

        return self.d.operations.create(project=project, description="Copying storage volume",
                                        resources={"storage_volumes": [vol_url(pool, "custom", name, project)]},
                                        run=run)

    async def _make(self, rec: dict, src_dir: str | None, snaps: list[tuple[dict, str]]) -> None:
        """On disk first (with its snapshots), recorded last; undone on any failure."""
        drv = self.d.pools.driver(rec["pool"])
        key = disk_key(rec["project"], rec["name"])
        dst = drv.custom_dir(key)
        async with self.d.pools.lock(rec["pool"]):
            if os.path.lexists(dst):
                raise Conflict("Volume by that name already exists")
            try:
                if src_dir is None:
                    await asyncio.to_thread(drv.create_volume, dst)
                else:
                    for s, spath in snaps:
                        await asyncio.to_thread(drv.copy_tree, spath, drv.custom_snapshot_dir(key, s["name"]))
                    await asyncio.to_thread(drv.copy_tree, src_dir, dst)
                if rec["config"].get("size"):
                    await asyncio.to_thread(drv.set_size, dst, parse_size(rec["config"]["size"]))
                async with self.db.transaction() as tx:
                    if await q.volume(tx, rec["pool"], rec["project"], "custom", rec["name"]) is not None:
                        raise Conflict("Volume by that name already exists")
                    await q.create_volume(tx, rec)
                    v = await q.volume(tx, rec["pool"], rec["project"], "custom", rec["name"])
                    for s, _ in snaps:
                        await q.create_volume_snapshot(tx, v["id"], s)
            except BaseException:
                await asyncio.to_thread(drv.delete_tree, dst)
                await asyncio.to_thread(drv.delete_tree, os.path.dirname(drv.custom_snapshot_dir(key, "x")))
                raise

    # ---- update, rename, move, delete ---------------------------------------------------------

    async def update(self, pool: str, project: str, type_: str, name: str, body: dict, *, replace: bool,
                     requestor, etag_check=None) -> None:
        """PUT/PATCH: corral/storage/volupdate.py (If-Match, validate, apply, store under the volume's lock)."""
        from corral.storage import volupdate
        await volupdate.update(self, pool, project, type_, name, body, replace=replace, requestor=requestor,
                               etag_check=etag_check)

    async def set_volatile(self, v: dict, changes: dict[str, str | None]) -> None:
        async with self.db.transaction() as tx:
            cur = await q.volume(tx, v["pool"], v["project"], "custom", v["name"])
            cfg = dict(cur["config"])
            for k, val in changes.items():
                if val is None:
                    cfg.pop(k, None)
                else:
                    cfg[k] = val
            await q.update_volume(tx, cur["id"], cur["description"], cfg)

    async def post(self, pool: str, project: str, type_: str, name: str, body: dict, requestor):
        """POST on a volume: rename, or move to another pool. Always an operation."""
        if type_ != "custom":
            raise BadRequest("Only custom storage volumes can be renamed or moved here")
        if body.get("migration"):
            raise NotImplementedFeature("storage volume migration between servers")
        if body.get("project") and body["project"] != project:   # storage_volume_project_move
            from corral.storage import volprojectmove
            return await volprojectmove.move(self, pool, project, name, body, requestor)
        v = await self.custom(pool, project, name)
        new = check_entity_name("storage volume", body.get("name") or name)
        target = body.get("pool") or pool
        self._pool(target)
        if target == pool and new == name:
            raise BadRequest("The new name and pool are the same as the old ones")
        if await self.used_by(pool, project, name):
            raise BadRequest("Volume is still in use by instances or profiles")
        async with self.db.session() as tx:
            if await q.volume(tx, target, project, "custom", new) is not None:
                raise Conflict("Volume by that name already exists")
            snaps = await q.volume_snapshots(tx, v["id"])

        async def run(op):
            if target == pool:
                await self._rename(v, new)
            else:
                await self._move(v, target, new, snaps)
            self.events.lifecycle("storage-volume-renamed" if target == pool else "storage-volume-moved",
                                  vol_url(target, "custom", new, project), project=project,
                                  context={"old_name": name}, requestor=requestor)

        return self.d.operations.create(project=project, description="Moving storage volume",
                                        resources={"storage_volumes": [vol_url(pool, "custom", name, project)]},
                                        run=run)

    async def _rename(self, v: dict, new: str) -> None:
        drv = self.d.pools.driver(v["pool"])
        old_key, new_key = disk_key(v["project"], v["name"]), disk_key(v["project"], new)
        moves = [(drv.custom_dir(old_key), drv.custom_dir(new_key)),
                 (os.path.dirname(drv.custom_snapshot_dir(old_key, "x")),
                  os.path.dirname(drv.custom_snapshot_dir(new_key, "x")))]
        done = []
        async with self.d.pools.lock(v["pool"]):
            try:
                for a, b in moves:
                    if os.path.lexists(a):
                        await asyncio.to_thread(drv.rename, a, b)
                        done.append((a, b))
                async with self.db.transaction() as tx:
                    await q.move_volume(tx, v["id"], v["pool"], new)
            except BaseException:
                for a, b in reversed(done):
                    os.rename(b, a)
                raise
            self.d.volume_backups.renamed(v, new)

    async def _move(self, v: dict, target: str, new: str, snaps: list[dict]) -> None:
        """Copy into the target pool (with snapshots), then drop the source."""
        rec = {**v, "pool": target, "name": new}
        await self._make(rec, self.path(v), [(s, self.snap_path(v, s["name"])) for s in snaps])
        await self._remove(v)

    async def delete(self, pool: str, project: str, type_: str, name: str, requestor) -> None:
        if type_ == "image":
            raise BadRequest("Image volumes are removed with their image (DELETE /1.0/images/...)")
        if type_ != "custom":
            raise BadRequest(f'Storage volumes of type "{type_}" are removed with their instance')
        v = await self.custom(pool, project, name)
        self._pool(pool)
        if await self.used_by(pool, project, name):
            raise BadRequest("The storage volume is still in use")
        await self._remove(v)
        self.events.lifecycle("storage-volume-deleted", vol_url(pool, "custom", name, project),
                              project=project, requestor=requestor)

    async def _remove(self, v: dict) -> None:
        """Record first (a crash leaves only files the reconciliation removes), then the files."""
        drv = self.d.pools.driver(v["pool"])
        key = disk_key(v["project"], v["name"])
        async with self.db.transaction() as tx:
            await q.delete_volume_snapshots(tx, v["id"])
            await q.delete_volume(tx, v["pool"], v["project"], "custom", v["name"])
        await asyncio.to_thread(drv.delete_tree, os.path.dirname(drv.custom_snapshot_dir(key, "x")))
        await asyncio.to_thread(drv.delete_tree, drv.custom_dir(key))
        self.d.volume_backups.delete_all(v)

    async def _running(self, project: str, name: str) -> bool:
        try:
            inst = await self.d.instances.load(project, name)
        except NotFound:
            return False
        return self.d.instances.status(inst) != "Stopped"

    # ---- disk devices -------------------------------------------------------------------------

    async def attach_source(self, pool: str, project: str, name: str, idmap: list[IdmapEntry] | None,
                            instance: str) -> tuple[str, bool]:
        """The host directory to mount for a disk device using this custom volume, and whether the
        mount must be idmapped. Without security.shifted, the volume's files are shifted (chowned)
        to the instance's idmap, as LXD does, and the map is recorded on the volume."""
        v = await self.custom(pool, self.d.projects.holder("storage.volumes", project), name)
        self._pool(pool)
        path = self.path(v)
        if is_true(v["config"].get("security.shifted")):
            return path, idmap is not None
        if is_true(v["config"].get("security.unmapped")):
            return path, False
        last_raw = v["config"].get("volatile.idmap.last") or "[]"
        last = [IdmapEntry.from_lxd(e) for e in json.loads(last_raw)] or None
        if (last or []) != (idmap or []):
            for u in await self.used_by(pool, v["project"], name):
                other = u.split("/1.0/instances/", 1)
                if len(other) != 2:
                    continue
                oname, _, oquery = other[1].partition("?project=")
                if (oname, oquery or "default") != (instance, project) and await self._running(oquery or "default", oname):
                    raise BadRequest(f'Idmaps of instance "{instance}" and storage volume "{name}" '
                                     "are not identical")
            async with self.d.pools.lock(pool):
                await asyncio.to_thread(shift_tree, path, last, idmap)
                await self.set_volatile(v, {"volatile.idmap.last": json.dumps(
                    [e.to_lxd() for e in idmap or []], separators=(",", ":"))})
        return path, False


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def _root_pool(devices: dict) -> str | None:
    for dev in devices.values():
        if dev.get("type") == "disk" and dev.get("path") == "/" and not dev.get("source"):
            return dev.get("pool") or None
    return None
