"""Instance snapshots: their records and representation, and the operations that create, rename,
delete and restore them (the copy itself is the instance object's: Instance.snapshot/restore)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from corral import config, timeutil
from corral.config.schedule import next_snapshot_name
from corral.db.queries import instances as q
from corral.errors import BadRequest, Conflict, NotFound, NotImplementedFeature
from corral.instance import layout
from corral.instance.model import Loaded, resources, url
from corral.instance.requests import SnapshotCreate, SnapshotRename, SnapshotUpdate
from corral.names import check_entity_name


def snapshot_url(name: str, snap: str) -> str:
    return f"/1.0/instances/{name}/snapshots/{snap}"


async def snapshots(insts, inst: Loaded) -> list[dict]:
    async with insts.db.session() as tx:
        return await q.snapshots(tx, inst.rec["id"])


async def snapshots_of_all(insts) -> dict[int, list[dict]]:
    async with insts.db.session() as tx:
        return await q.snapshots_of_all(tx)


async def get(insts, inst: Loaded, snap: str) -> dict:
    async with insts.db.session() as tx:
        s = await q.snapshot(tx, inst.rec["id"], snap)
    if s is None:
        raise NotFound("Snapshot not found")
    return s


def render(inst: Loaded, s: dict) -> dict:
    return {"architecture": s["architecture"], "config": s["config"], "created_at": s["created_at"],
            "description": s["description"], "devices": s["devices"], "ephemeral": False,
            "expanded_config": {**inst.config, **s["config"]}, "expanded_devices": {**inst.devices, **s["devices"]},
            "expires_at": s["expires_at"], "last_used_at": timeutil.ZERO,
            "name": s["name"], "profiles": s["profiles"], "size": -1, "stateful": s["stateful"]}


async def next_name(insts, inst: Loaded) -> str:
    taken = {s["name"] for s in await snapshots(insts, inst)}
    try:
        return next_snapshot_name(inst.config.get("snapshots.pattern") or "snap%d", taken)
    except ValueError as e:
        raise BadRequest(f'Invalid value for "snapshots.pattern": {e}') from None


def default_expiry(inst: Loaded) -> str:
    seconds = config.value(config.INSTANCE, inst.config, "snapshots.expiry")
    return timeutil.after(seconds) if seconds else timeutil.ZERO


async def create(insts, project: str, name: str, req: SnapshotCreate, requestor: dict | None):
    inst = await insts.load(project, name)
    await insts.d.restrictions.check_snapshot(project)
    if req.stateful:
        raise NotImplementedFeature("stateful snapshots (CRIU)")
    snap = req.name or await next_name(insts, inst)
    check_entity_name("snapshot", snap)
    if any(s["name"] == snap for s in await snapshots(insts, inst)):
        raise Conflict(f'Snapshot "{snap}" already exists')
    expires_at = req.expires_at or default_expiry(inst)

    async def run(op):
        async with insts.lock(project, name):
            cur = insts.instance(await insts.load(project, name))
            await cur.snapshot(snap, expires_at, req.description)
        insts.events.lifecycle("instance-snapshot-created", snapshot_url(name, snap),
                               project=project, requestor=requestor)

    return insts.d.operations.create(project=project, description="Snapshotting instance",
                                     resources={**resources(name, project),
                                                "instances_snapshots": [snapshot_url(name, snap)]},
                                     run=run)


async def update(insts, project: str, name: str, snap: str, req: SnapshotUpdate) -> None:
    inst = await insts.load(project, name)
    s = await get(insts, inst, snap)
    description = s["description"] if req.description is None else req.description
    async with insts.db.transaction() as tx:
        await q.update_snapshot(tx, inst.rec["id"], snap, expires_at=req.expires_at or s["expires_at"],
                                description=description or "")


async def rename(insts, project: str, name: str, snap: str, req: SnapshotRename, requestor: dict | None):
    if req.migration:
        raise NotImplementedFeature("snapshot migration")
    new = check_entity_name("snapshot", req.name)
    inst = await insts.load(project, name)
    await get(insts, inst, snap)
    if any(s["name"] == new for s in await snapshots(insts, inst)):
        raise Conflict(f'Name "{new}" already in use')

    async def run(op):
        async with insts.lock(project, name):
            cur = await insts.load(project, name)
            pool, vol = insts.d.pools.pool(cur.pool), insts.volume_name(project, name)
            kw = insts.instance(cur).pool_kw
            await asyncio.to_thread(pool.rename_instance_snapshot, vol, snap, new, **kw)
            try:
                async with insts.db.transaction() as tx:
                    await q.rename_snapshot(tx, cur.rec["id"], snap, new)
            except BaseException:
                await asyncio.to_thread(pool.rename_instance_snapshot, vol, new, snap, **kw)
                raise
            await layout.write_backup_file(insts, project, name)
        insts.events.lifecycle("instance-snapshot-renamed", snapshot_url(name, new),
                               project=project, context={"old_name": snap}, requestor=requestor)

    return insts.d.operations.create(project=project, description="Renaming snapshot",
                                     resources=resources(name, project), run=run)


async def delete(insts, project: str, name: str, snap: str, requestor: dict | None):
    inst = await insts.load(project, name)
    await get(insts, inst, snap)

    async def run(op):
        async with insts.lock(project, name):
            cur = await insts.load(project, name)
            async with insts.db.transaction() as tx:
                await q.delete_snapshot(tx, cur.rec["id"], snap)
            pool = insts.d.pools.pool(cur.pool)
            await asyncio.to_thread(pool.delete_instance_snapshot, insts.volume_name(project, name), snap)
            await asyncio.to_thread(layout.sync, insts, cur)   # the snapshots/ link goes with the last one
            await layout.write_backup_file(insts, project, name)
        insts.events.lifecycle("instance-snapshot-deleted", snapshot_url(name, snap),
                               project=project, requestor=requestor)

    return insts.d.operations.create(project=project, description="Deleting snapshot",
                                     resources=resources(name, project), run=run)


async def restore(insts, project: str, name: str, snap: str, requestor: dict | None):
    inst = await insts.load(project, name)
    if "/" in snap:
        snap = snap.split("/", 1)[1]
    await insts.d.restrictions.check_restore(project, name, await get(insts, inst, snap))

    async def run(op):
        async with insts.lock(project, name):
            await insts.instance(await insts.load(project, name)).restore(snap)
        insts.events.lifecycle("instance-restored", url(name, project), project=project,
                               context={"snapshot": snap}, requestor=requestor)

    return insts.d.operations.create(project=project, description="Restoring snapshot",
                                     resources=resources(name, project), run=run)


async def prune_expired(insts) -> int:
    """Delete this member's instances' snapshots whose expires_at has passed (snapshots.expiry / expires_at)."""
    now = datetime.now(timezone.utc)
    by_id = await snapshots_of_all(insts)
    pruned = 0
    for inst in await insts.load_local(None):   # the others' members prune theirs
        for s in by_id.get(inst.rec["id"], []):
            exp = s["expires_at"]
            if not exp or exp.startswith(("0001-", "1970-")) or timeutil.parse(exp) > now:
                continue
            op = await delete(insts, inst.project, inst.name, s["name"], None)
            await op.wait(None)
            pruned += 1
    return pruned
