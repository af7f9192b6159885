"""Storage volumes with LXD's semantics: custom volumes (records in dqlite, one directory or
subvolume each) with snapshots, copies and moves between pools; instance and image volumes are
listed from the instances and the images unpacked in a pool.

A volume is made on disk first and recorded last, so a failure or a crash half-way never leaves a
record pointing at nothing; the start-up reconciliation (storage/reconcile.py) removes the rest.
"""
from __future__ import annotations

import asyncio
import json
import re

from corral import timeutil
from corral.db.queries import storage as q
from corral.config.keys import is_true
from corral.config.storage import check_volume
from corral.errors import BadRequest, Conflict, NotFound, NotImplementedFeature
from corral.idmap import IdmapEntry
from corral.names import check_entity_name
from corral.storage import instvolumes
from corral.storage.shift import shift_tree
from corral.storage.sizes import parse_size
from corral.storage.volnames import vol_url
from corral.storage.volsnapshots import VolumeSnapshots
from corral.storage.volume import BLOCK, CONTENT_TYPES, FILESYSTEM, Volume

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
        # (pool, project, name) of the block custom volumes: disk device validation is synchronous
        self._block: set[tuple[str, str, str]] = set()

    def note_volumes(self, records: list[dict]) -> None:
        """All custom volume records (at start, storage/reconcile.py): which ones are block volumes."""
        self._block = {(v["pool"], v["project"], v["name"]) for v in records if v.get("content_type") == BLOCK}

    def note_block(self, pool: str, project: str, name: str) -> None:
        """A block custom volume made outside _make (a backup's import)."""
        self._block.add((pool, project, name))

    def is_block(self, pool: str, project: str | None, name: str) -> bool:
        """Whether a custom volume is a block volume (project None: in any project)."""
        if project is None:
            return any(b[0] == pool and b[2] == name for b in self._block)
        return (pool, self.d.projects.holder("storage.volumes", project), name) in self._block

    # ---- lookups ------------------------------------------------------------------------------

    def _pool(self, pool: str):
        return self.d.pools.usable(pool)

    async def custom(self, pool: str, project: str, name: str) -> dict:
        self.d.pools.pool(pool)
        async with self.db.session() as tx:
            v = await q.volume(tx, pool, project, "custom", name)
        if v is None:
            raise NotFound("Storage volume not found")
        return v

    def vol(self, v: dict, pool: str | None = None, name: str | None = None) -> Volume:
        """The Volume of a custom volume record (in `pool`, named `name` when given)."""
        return self.d.pools.pool(pool or v["pool"]).custom_volume(
            v["project"], name or v["name"], v.get("content_type") or FILESYSTEM, v.get("config"))

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
                "type": type_, "used_by": used_by, "location": "none",
                "content_type": v.get("content_type") or FILESYSTEM,
                "project": v.get("project", "default"), "created_at": v.get("created_at", timeutil.ZERO)}

    async def list(self, pool: str, project: str, type_: str | None = None) -> list[dict]:
        p = self.d.pools.pool(pool)
        out = []
        if type_ in (None, "container", "virtual-machine"):
            # an instance's volume: a VM's is of type virtual-machine, content type block (LXD's)
            edited = {t: await instvolumes.records(self.db, pool, project, t) for t in instvolumes.TYPES
                      if type_ in (None, t)}
            for inst in await self.d.instances.load_all(project):
                vt = "virtual-machine" if inst.type == "virtual-machine" else "container"
                if vt in edited and inst.devices and _root_pool(inst.devices) == pool:
                    rec = edited[vt].get(inst.name, {})
                    out.append(self._render({**rec, "name": inst.name, "project": inst.project,
                                             "content_type": BLOCK if vt == "virtual-machine" else FILESYSTEM}, vt,
                                            [f"/1.0/instances/{inst.name}" +
                                             ("" if project == "default" else f"?project={project}")]))
        if type_ in (None, "image") and p.info().optimized_images and self.d.pools.available(pool):
            for fp in await asyncio.to_thread(p.image_fingerprints):
                if re.fullmatch(r"[0-9a-f]{64}", fp):
                    vm = await asyncio.to_thread(p.has_image, fp, vtype="virtual-machine")
                    out.append(self._render({"name": fp, "project": project, "content_type": BLOCK if vm else FILESYSTEM},
                                            "image", [f"/1.0/images/{fp}"]))
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

    async def state(self, pool: str, project: str, type_: str, name: str) -> dict:
        v = await self.get(pool, project, type_, name)
        p = self._pool(pool)
        if type_ == "custom":
            vol = p.custom_volume(project, name, v["content_type"], v["config"])
        elif type_ in ("container", "virtual-machine"):
            vol = p.instance_volume(p.volume_name(project, name), vtype=type_)
        else:
            vol = p.image_volume(name)
        used = await asyncio.to_thread(p.usage, vol)
        size = v["config"].get("size")
        if type_ == "virtual-machine":   # a VM's volume: its disk's size
            return {"usage": {"used": used, "total": await asyncio.to_thread(p.instance_disk_size, vol.name)}}
        return {"usage": {"used": used, "total": parse_size(size) if size else -1}}

    # ---- create, copy -------------------------------------------------------------------------

    async def create(self, pool: str, project: str, body: dict, type_: str | None, requestor):
        """POST .../volumes[/{type}]: returns None (done, sync) or an operation (copies)."""
        vtype = body.get("type") or type_ or "custom"
        if type_ and body.get("type") and body["type"] != type_:
            raise BadRequest("Volume type in the URL and the request body differ")
        if vtype != "custom":
            raise BadRequest(f'Storage volumes of type "{vtype}" cannot be created directly')
        content_type = body.get("content_type") or FILESYSTEM
        if content_type not in CONTENT_TYPES:
            raise BadRequest(f'Invalid content type "{content_type}"')
        name = check_entity_name("storage volume", body.get("name"))
        p = self._pool(pool)
        drv = p.driver
        description = body.get("description") or ""
        if not isinstance(description, str):
            raise BadRequest('Invalid value for field "description": expected string')
        config = check_volume_config(body.get("config") or {}, drv.name, content_type,
                                     volume=disk_key(project, name))
        config = {k: v for k, v in config.items() if not k.startswith("volatile.")}
        for k, v in drv.config.items():   # the pool's volume.* keys are the defaults
            if k.startswith("volume.") and v:
                config.setdefault(k[len("volume."):], v)
        if config.get("size") and content_type != BLOCK:
            await asyncio.to_thread(p.check_quota_supported)
        async with self.db.session() as tx:
            if await q.volume(tx, pool, project, "custom", name) is not None:
                raise Conflict("Volume by that name already exists")
        await self.d.limits.check_volume(project, pool, name, config)
        source = body.get("source") or {}
        if not isinstance(source, dict):
            raise BadRequest('Invalid value for field "source": expected an object')
        stype = source.get("type") or ""
        rec = {"pool": pool, "project": project, "type": "custom", "name": name, "description": description,
               "config": config, "content_type": content_type, "created_at": timeutil.now()}
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
        rec["content_type"] = src["content_type"]   # a copy has its source's content type
        await self.d.limits.check_volume(project, pool, name, rec["config"])   # the copy's own size
        src_vol = self.vol(src).snapshot(src_snap) if src_snap else self.vol(src)

        async def run(op):
            await self._make(rec, src_vol, snaps)
            self.events.lifecycle("storage-volume-created", vol_url(pool, "custom", name, project),
                                  project=project, requestor=requestor)

        return self.d.operations.create(project=project, description="Copying storage volume",
                                        resources={"storage_volumes": [vol_url(pool, "custom", name, project)]},
                                        run=run)

    async def _make(self, rec: dict, src: Volume | None, snaps: list[dict]) -> None:
        """On disk first (with its snapshots), recorded last; undone on any failure."""
        pool = self.d.pools.pool(rec["pool"])
        vol = self.vol(rec)
        async with self.d.pools.lock(rec["pool"]):
            if await asyncio.to_thread(pool.exists, vol):
                raise Conflict("Volume by that name already exists")
            try:
                if src is None:
                    await asyncio.to_thread(pool.create, vol)
                else:
                    await asyncio.to_thread(pool.copy, vol, self.d.pools.pool(src.pool), src,
                                            [s["name"] for s in snaps])
                if rec["config"].get("size"):   # a block volume's disk: made of its size (a copy grows to it)
                    await asyncio.to_thread(pool.set_quota, vol, parse_size(rec["config"]["size"]))
                async with self.db.transaction() as tx:
                    if not await q.create_custom_volume(tx, rec, snaps):
                        raise Conflict("Volume by that name already exists")
            except BaseException:
                await asyncio.to_thread(pool.delete, vol)
                raise
            if vol.content_type == BLOCK:
                self._block.add((rec["pool"], rec["project"], rec["name"]))

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
        """POST on a volume: a rename within the pool is done at once (LXD answers it synchronously, and
        `lxc storage volume rename` does not wait for an operation): None. A move to another pool is
        an operation."""
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

        if target == pool:
            await self._rename(v, new)
            self.events.lifecycle("storage-volume-renamed", vol_url(target, "custom", new, project),
                                  project=project, context={"old_name": name}, requestor=requestor)
            return None

        async def run(op):
            await self._move(v, target, new, snaps)
            self.events.lifecycle("storage-volume-moved", vol_url(target, "custom", new, project), project=project,
                                  context={"old_name": name}, requestor=requestor)

        return self.d.operations.create(project=project, description="Moving storage volume",
                                        resources={"storage_volumes": [vol_url(pool, "custom", name, project)]},
                                        run=run)

    async def _rename(self, v: dict, new: str) -> None:
        pool = self.d.pools.pool(v["pool"])
        vol = self.vol(v)
        async with self.d.pools.lock(v["pool"]):
            await asyncio.to_thread(pool.rename, vol, self.vol(v, name=new).name)
            try:
                async with self.db.transaction() as tx:
                    await q.move_volume(tx, v["id"], v["pool"], new)
            except BaseException:
                await asyncio.to_thread(pool.rename, self.vol(v, name=new), vol.name)
                raise
            if (v["pool"], v["project"], v["name"]) in self._block:
                self._block.discard((v["pool"], v["project"], v["name"]))
                self._block.add((v["pool"], v["project"], new))
            self.d.volume_backups.renamed(v, new)

    async def _move(self, v: dict, target: str, new: str, snaps: list[dict]) -> None:
        """Copy into the target pool (with snapshots), then drop the source."""
        rec = {**v, "pool": target, "name": new}
        await self._make(rec, self.vol(v), snaps)
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
        pool = self.d.pools.pool(v["pool"])
        async with self.db.transaction() as tx:
            await q.delete_volume_snapshots(tx, v["id"])
            await q.delete_volume(tx, v["pool"], v["project"], "custom", v["name"])
        await asyncio.to_thread(pool.delete, self.vol(v))
        self._block.discard((v["pool"], v["project"], v["name"]))
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
        if v["content_type"] == BLOCK:
            raise BadRequest("Custom block volumes cannot be used on containers")
        path = await asyncio.to_thread(self._pool(pool).mount, self.vol(v))
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


def _root_pool(devices: dict) -> str | None:
    for dev in devices.values():
        if dev.get("type") == "disk" and dev.get("path") == "/" and not dev.get("source"):
            return dev.get("pool") or None
    return None
