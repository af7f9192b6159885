"""`lxd recover`'s server side (LXD 5.0's POST /internal/recover/validate and /internal/recover/import):
find the instance volumes on the storage pools that the database does not know, from the `backup.yaml`
each volume carries (instance/backup_yaml.py), and recreate their records (instance and snapshots).

validate: {"pools": [{"name": ...}]} -> {"UnknownVolumes": [{"name", "type", "snapshotCount", "project",
"pool"}], "DependencyErrors": ["Profile \"x\" in project \"y\"", ...]} (null for none, as LXD).
import: validates again; with dependency errors it answers the validation result and changes nothing,
else it recreates every unknown instance. It never touches an instance the database has: a volume
whose instance exists on another pool is a dependency error (a conflict to resolve first).

Only the pools the database knows can be scanned: recovering an unknown pool (LXD's pool entries
with a driver and config) is refused with a clear error.
"""
from __future__ import annotations

import asyncio
import datetime
import logging
import os

from corral import config, timeutil
from corral.db.queries import instances as q
from corral.db.queries import networks as qn
from corral.db.queries import profiles as qp
from corral.errors import BadRequest, Conflict, CorralError, NotImplementedFeature
from corral.backup import yamlfile
from corral.instance.devices import validate_devices
from corral.names import check_instance_name

log = logging.getLogger(__name__)


def _pools(body: dict) -> list[str]:
    pools = body.get("pools")
    if not isinstance(pools, list) or not all(isinstance(p, dict) for p in pools):
        raise BadRequest('Invalid request: "pools" must be a list of storage pools')
    names = []
    for p in pools:
        if not isinstance(p.get("name"), str) or not p["name"]:
            raise BadRequest("Invalid request: every storage pool needs a name")
        names.append(p["name"])
    return names


async def _scan(d, pool_names: list[str]) -> tuple[list[dict], list[str]]:
    """(unknown instance volumes with their parsed backup.yaml, dependency errors)."""
    known_pools = set(d.pools.names())
    for name in pool_names:
        if name not in known_pools:
            raise NotImplementedFeature(f'recovering the unknown storage pool "{name}" (only the storage '
                                        "pools the database has can be scanned)")
    known = {(i.project, i.name): i.pool for i in await d.instances.load_all(None)}
    found: list[dict] = []
    deps: list[str] = []
    for pool in pool_names:
        spool = d.pools.pool(pool)
        for vol in await asyncio.to_thread(spool.instance_volume_names):
            vdir = await asyncio.to_thread(spool.instance_path, vol)
            if not os.path.isdir(vdir) or os.path.islink(vdir):
                continue
            path = os.path.join(vdir, yamlfile.FILENAME)
            if not os.path.exists(path):
                if not any(k for k in known if d.instances.volume_name(*k) == vol):
                    log.warning("recover: instance volume %s on pool %s has no %s", vol, pool, yamlfile.FILENAME)
                continue
            try:
                doc = await asyncio.to_thread(yamlfile.parse, path)
            except yamlfile.BackupYamlError as e:
                raise BadRequest(f'Failed parsing backup file "{path}": {e}') from None
            c = doc["container"]
            project, name = c.get("project") or "default", c["name"]
            if d.instances.volume_name(project, name) != vol:
                raise BadRequest(f'Instance volume "{vol}" on pool "{pool}" has a backup file for instance '
                                 f'"{name}" in project "{project}"')
            if (project, name) in known:
                if known[(project, name)] != pool:
                    deps.append(f'Instance "{name}" in project "{project}" already exists on pool '
                                f'"{known[(project, name)]}" (conflicts with the volume on pool "{pool}")')
                continue
            try:   # what the file says is checked as a create request is (root may have edited it)
                check_instance_name(name)
                config.validate(config.INSTANCE, {str(k): str(v) for k, v in (c.get("config") or {}).items()})
                validate_devices(d, c.get("devices") or {})
            except (CorralError, ValueError) as e:
                raise BadRequest(f'Invalid backup file "{path}": {e}') from None
            present = set(await asyncio.to_thread(spool.snapshot_names, spool.instance_volume(vol)))
            snaps = [s for s in doc["snapshots"] if s["name"] in present]
            found.append({"pool": pool, "volume": vol, "project": project, "name": name,
                          "container": c, "snapshots": snaps})
    async with d.db.session() as tx:
        nets = {n["name"] for n in await qn.get_all(tx)}   # managed networks live in project default
        for f in found:
            if not await d.projects.exists(f["project"]):
                deps.append(f'Project "{f["project"]}"')
                continue
            have = set(await qp.names(tx, f["project"]))
            for prof in f["container"].get("profiles") or []:
                if prof not in have:
                    deps.append(f'Profile "{prof}" in project "{f["project"]}"')
            for dev in (f["container"].get("devices") or {}).values():
                net = dev.get("network") if isinstance(dev, dict) and dev.get("type") == "nic" else None
                if net and net not in nets:
                    deps.append(f'Network "{net}" in project "{f["project"]}"')
    return found, sorted(set(deps), key=deps.index)


def _result(found: list[dict], deps: list[str]) -> dict:
    vols = [{"name": f["name"], "type": f["container"].get("type") or "container",
             "snapshotCount": len(f["snapshots"]), "project": f["project"], "pool": f["pool"]} for f in found]
    return {"UnknownVolumes": vols or None, "DependencyErrors": deps or None}


async def validate(d, body: dict) -> dict:
    found, deps = await _scan(d, _pools(body))
    return _result(found, deps)


def _ts(v, default: str) -> str:
    """A timestamp as corrald records them (RFC 3339); YAML loads LXD's unquoted ones as datetimes."""
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        v = v.astimezone(datetime.timezone.utc)
        frac = f".{v.microsecond:06d}" if v.microsecond else ""
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}{frac}Z"
    return str(v) if v else default


def _record(c: dict) -> dict:
    return {"project": c.get("project") or "default", "name": c["name"], "node": "none",
            "type": c.get("type") or "container", "architecture": c.get("architecture") or "x86_64",
            "ephemeral": bool(c.get("ephemeral")), "stateful": bool(c.get("stateful")),
            "description": c.get("description") or "", "created_at": _ts(c.get("created_at"), timeutil.now()),
            "last_used_at": _ts(c.get("last_used_at"), timeutil.ZERO),
            "config": {str(k): str(v) for k, v in (c.get("config") or {}).items()},
            "devices": c.get("devices") or {}, "profiles": list(c.get("profiles") or [])}


def _snapshot(c: dict, s: dict) -> dict:
    return {"name": s["name"], "created_at": _ts(s.get("created_at"), timeutil.now()),
            "expires_at": _ts(s.get("expires_at"), timeutil.ZERO), "stateful": bool(s.get("stateful")),
            "description": s.get("description") or "", "architecture": s.get("architecture") or c.get("architecture")
            or "x86_64", "config": {str(k): str(v) for k, v in (s.get("config") or {}).items()},
            "devices": s.get("devices") or {}, "profiles": list(s.get("profiles") or [])}


async def import_(d, body: dict) -> dict:
    """Recreate the records of every unknown instance; the validation result when something is missing."""
    found, deps = await _scan(d, _pools(body))
    if deps:
        return _result(found, deps)
    insts = d.instances
    for f in found:
        project, name = f["project"], f["name"]
        async with insts.lock(project, name):
            rec = _record(f["container"])
            async with d.db.transaction() as tx:
                if await q.get(tx, project, name) is not None:
                    raise Conflict(f'Instance "{name}" in project "{project}" already exists')
                new_id = await q.create(tx, rec)
                for s in f["snapshots"]:
                    await q.create_snapshot(tx, new_id, _snapshot(f["container"], s))
            try:
                inst = await insts.load(project, name)
                await asyncio.to_thread(insts.driver.create, insts.spec(inst))
            except BaseException:
                async with d.db.transaction() as tx:
                    await q.delete(tx, project, name)
                raise
        log.info('recovered instance "%s" in project "%s" from pool "%s" (%d snapshots)', name, project,
                 f["pool"], len(f["snapshots"]))
        await d.backup_yaml.write_now(project, name)
    return {}
