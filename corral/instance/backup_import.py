"""`lxc import`: restore an instance (and its snapshots) from a backup tarball made by `lxc export`,
from Corral or from LXD 5.0 (POST /1.0/instances with Content-Type application/octet-stream,
X-LXD-name / X-LXD-pool overriding the name and the storage pool: backup_override_name).

Everything about the tarball is checked before the operation starts (bad input: a 400, nothing
changed). Files are extracted straight into new volumes; their owners are shifted from the map the
backup says they are stored with (`volatile.last_state.idmap`, LXD's meaning) to Corral's on-disk
form (unshifted: Corral idmaps the rootfs mount). Any failure removes the volumes and the records.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os

from corral import config, timeutil
from corral.db.queries import instances as q
from corral.errors import BadRequest, Conflict, NotImplementedFeature
from corral.backup.format import BackupInfo, BackupTarball
from corral.instance.devices import validate_devices
from corral.idmap import IdmapEntry
from corral.names import check_entity_name, check_instance_name
from corral.storage.shift import shift_tree

log = logging.getLogger(__name__)

ARCHITECTURES = ("x86_64", "i686")
SKIP = {"backup.yaml"}   # LXD's per-volume config copy: Corral keeps its config in the database


def _stored_idmap(cfg: dict) -> list[IdmapEntry] | None:
    """The map a volume's files are stored with, by LXD's volatile.last_state.idmap."""
    raw = cfg.get("volatile.last_state.idmap") or "[]"
    try:
        return [IdmapEntry.from_lxd(e) for e in json.loads(raw)] or None
    except (ValueError, TypeError, KeyError) as e:
        raise BadRequest(f"Invalid backup file: bad volatile.last_state.idmap: {e}") from None


def _str_map(v, what: str) -> dict:
    v = v or {}
    if not isinstance(v, dict):
        raise BadRequest(f"Invalid backup file: {what} must be a mapping")
    return {str(k): ("" if x is None else (str(x).lower() if isinstance(x, bool) else str(x))) for k, x in v.items()}


def _volatile_reset(cfg: dict) -> dict:
    """Config as stored for a stopped instance whose files are unshifted (filled in by _create)."""
    cfg = {k: v for k, v in cfg.items() if k not in ("volatile.idmap.current", "volatile.last_state.idmap")}
    cfg["volatile.last_state.power"] = "STOPPED"
    return cfg


async def import_instance(instances, project: str, tar_path: str, name: str | None, pool: str | None,
                          requestor: dict | None):
    """Check the backup at `tar_path` and return the operation that restores it. The tarball file
    is removed when the operation ends (or now, when the backup is refused)."""
    try:
        bt = await asyncio.to_thread(BackupTarball, tar_path)
    except BaseException:
        os.unlink(tar_path)
        raise
    try:
        plan = await _plan(instances, project, bt, await asyncio.to_thread(bt.info), name, pool)
    except BaseException:
        bt.close()
        os.unlink(tar_path)
        raise
    name = plan["rec"]["name"]
    instances._reserved.add((project, name))

    async def run(op):
        try:
            async with instances.lock(project, name):
                await _restore(instances, bt, plan)
        finally:
            instances._reserved.discard((project, name))
            bt.close()
            os.unlink(tar_path)
        from corral.instance.manager import url
        instances.events.lifecycle("instance-created", url(name, project), project=project,
                                   context={"storage-pool": plan["pool"], "type": plan["rec"]["type"]},
                                   requestor=requestor)

    from corral.instance.manager import resources
    try:
        return instances.d.operations.create(project=project, description="Restoring backup",
                                             resources=resources(name, project), run=run)
    except BaseException:
        instances._reserved.discard((project, name))
        bt.close()
        os.unlink(tar_path)
        raise


async def _plan(instances, project: str, bt: BackupTarball, info: BackupInfo, name: str | None,
                pool: str | None) -> dict:
    from corral.instance.manager import expand, root_pool
    vm = info.kind == "virtual-machine"
    if info.kind not in ("container", "virtual-machine") or info.instance is None:
        raise BadRequest("The backup is not an instance backup (use `lxc storage volume import`)")
    if info.optimized:
        raise NotImplementedFeature("importing optimized storage backups")
    if vm:
        from corral.storage import vmbackup
        vmbackup.check_backup(bt, info.snapshots)
    else:
        bt.check_instance_layout()
    src = info.instance
    name = name or info.name
    check_instance_name(name)
    if name in await instances.names(project) or (project, name) in instances._reserved:
        raise Conflict(f'Instance "{name}" already exists')
    arch = src.get("architecture") or "x86_64"
    if arch not in ARCHITECTURES:
        raise BadRequest(f'Unsupported architecture "{arch}"')
    cfg = config.validate(config.INSTANCE, _str_map(src.get("config"), "config"))
    devices = validate_devices(instances.d, src.get("devices") or {})
    profile_names = src.get("profiles")
    if profile_names is None:
        profile_names = ["default"]
    if not isinstance(profile_names, list) or not all(isinstance(p, str) for p in profile_names):
        raise BadRequest("Invalid backup file: profiles must be a list of names")
    async with instances.db.session() as tx:
        profiles = await instances._profiles(tx, project, profile_names)
    _, edev = expand(profiles, cfg, devices)
    pool = pool or info.pool or root_pool(src.get("expanded_devices") or {}) or root_pool(edev)
    if not pool:
        raise BadRequest("Failed to get root disk device: No root device could be found")
    instances.d.pools.pool(pool)   # NotFound when the pool does not exist
    if root_pool(edev) != pool:
        # The backup's pool is not the one the profiles give: a local root disk says where it lives.
        local = next((k for k, d in devices.items() if d.get("type") == "disk" and d.get("path") == "/"
                      and not d.get("source")), None)
        if local:
            devices[local] = {**devices[local], "pool": pool}
        else:
            base = next((d for d in edev.values() if d.get("type") == "disk" and d.get("path") == "/"
                         and not d.get("source")), {"type": "disk", "path": "/"})
            devices["root"] = {**base, "pool": pool}
        devices = validate_devices(instances.d, devices)
    ephemeral = src.get("ephemeral", False)
    if not isinstance(ephemeral, bool):
        raise BadRequest("Invalid backup file: ephemeral must be a boolean")
    await instances.d.restrictions.check_instance(project, name, cfg, devices, profiles)

    stored = bt.names_below("backup/snapshots") if not vm else \
        {n.removesuffix(".img") for n in bt.names_below("backup/virtual-machine-snapshots")}
    by_name = {s.get("name"): s for s in info.instance_snapshots}
    snaps = []
    for sname in info.snapshots:
        check_entity_name("snapshot", sname)
        if sname not in stored:
            raise BadRequest(f'Invalid backup tarball: no data for snapshot "{sname}"')
        s = by_name.get(sname) or {}
        sprof = s.get("profiles") if isinstance(s.get("profiles"), list) else profile_names
        async with instances.db.session() as tx:   # a restore brings these back: same checks as the instance's
            await instances._profiles(tx, project, [str(p) for p in sprof])
        scfg = config.validate(config.INSTANCE, _str_map(s.get("config"), f"config of snapshot {sname}"))
        sdevices = validate_devices(instances.d, s.get("devices") or {})
        snaps.append({"name": sname, "stored_idmap": _stored_idmap(scfg) or _stored_idmap(cfg),
                      "rec": {"name": sname, "created_at": str(s.get("created_at") or timeutil.now()),
                              "expires_at": str(s.get("expires_at") or timeutil.ZERO),
                              "description": str(s.get("description") or ""),
                              "architecture": s.get("architecture") or arch, "stateful": False,
                              "config": _volatile_reset(scfg), "devices": sdevices,
                              "profiles": [str(p) for p in sprof]}})
    if not vm and "backup/container" not in bt.by_path and not bt.names_below("backup/container"):
        raise BadRequest("Invalid backup tarball: no backup/container/")
    rec = {"project": project, "name": name, "type": info.kind, "architecture": arch,
           "ephemeral": ephemeral, "stateful": False, "description": str(src.get("description") or ""),
           "config": _volatile_reset(cfg), "devices": devices, "profiles": profile_names,
           "created_at": str(src.get("created_at") or timeutil.now()), "last_used_at": timeutil.ZERO}
    return {"rec": rec, "pool": pool, "snapshots": snaps, "stored_idmap": _stored_idmap(cfg)}


def _filler(bt: BackupTarball, prefix: str, stored_idmap):
    """Fill a new instance volume (an empty directory) from the members below `prefix`, its owners
    shifted from the map the backup stores them with to Corral's on-disk form (unshifted)."""
    def fill(path: str) -> None:
        bt.extract(prefix, os.path.dirname(path), os.path.basename(path), skip=SKIP)
        shift_tree(path, stored_idmap, None)
    return fill


async def _restore(instances, bt: BackupTarball, plan: dict) -> None:
    rec, pool_name = plan["rec"], plan["pool"]
    project, name = rec["project"], rec["name"]
    pool = instances.d.pools.pool(pool_name)
    vol = instances.volume_name(project, name)
    if pool.has_instance(vol, vtype=rec["type"]) or pool.has_instance_snapshots(vol, vtype=rec["type"]):
        raise Conflict(f'Storage volume for instance "{name}" already exists in pool "{pool_name}"')
    kw = {"vtype": rec["type"]} if rec["type"] == "virtual-machine" else {}
    try:
        if kw:
            from corral.storage import vmbackup
            await asyncio.to_thread(vmbackup.restore_backup, pool, vol, bt, [s["name"] for s in plan["snapshots"]])
        else:
            await asyncio.to_thread(
                pool.create_from_backup, pool.instance_volume(vol),
                _filler(bt, "backup/container", plan["stored_idmap"]),
                [(s["name"], _filler(bt, f"backup/snapshots/{s['name']}", s["stored_idmap"]))
                 for s in plan["snapshots"]])
        await instances.register(rec, [s["rec"] for s in plan["snapshots"]])
    except BaseException:
        await asyncio.to_thread(pool.delete_instance, vol, **kw)
        async with instances.db.transaction() as tx:
            await q.delete(tx, project, name)
        raise
