"""Moving a stopped instance to another storage pool (POST /1.0/instances/NAME with "pool", what
`lxc move c --storage other` sends): the volume and its snapshots are copied by the target pool's
driver, the root disk is pointed at the new pool (a local override when it came from a profile),
and the old volume is removed once the record says the instance lives in the new pool."""
from __future__ import annotations

import asyncio
import os
import shutil

from corral.db.queries import instances as q
from corral.instance import layout
from corral.db.queries import storage as qs
from corral.errors import BadRequest, Conflict
from corral.names import check_instance_name


def _root_name(devices: dict) -> str | None:
    for name, dev in devices.items():
        if dev.get("type") == "disk" and dev.get("path") == "/" and not dev.get("source"):
            return name
    return None


async def move(instances, project: str, name: str, body: dict, requestor):
    from corral.instance.manager import resources, url
    d = instances.d
    target = body.get("pool")
    if not isinstance(target, str):
        raise BadRequest('Invalid value for field "pool": expected a pool name')
    new = check_instance_name(body.get("name") or name)
    inst = await instances.load(project, name)
    d.pools.usable(target)
    if target == inst.pool:
        raise BadRequest(f'Instance "{name}" is already in storage pool "{target}"')
    if instances.status(inst) != "Stopped":
        raise BadRequest("Instance must be stopped to be moved to another storage pool")
    if new != name and (new in await instances.names(project) or (project, new) in instances._reserved):
        raise Conflict(f'Name "{new}" already in use')
    instance_only = bool(body.get("instance_only"))

    async def run(op):
        async with instances.lock(project, name):
            await _move(instances, await instances.load(project, name), target, new, instance_only)
        instances.events.lifecycle("instance-updated", url(new, project), project=project,
                                   context={"storage-pool": target}, requestor=requestor)

    return d.operations.create(project=project, description="Moving instance to another storage pool",
                               resources=resources(name, project), run=run)


async def _move(instances, inst, target: str, new: str, instance_only: bool) -> None:
    d = instances.d
    src, dst = d.pools.pool(inst.pool), d.pools.pool(target)
    old_vol, new_vol = instances.volume_name(inst.project, inst.name), instances.volume_name(inst.project, new)
    snaps = await instances.snapshots(inst)
    made = False
    try:
        await asyncio.to_thread(dst.create_instance_from_copy, new_vol, src, old_vol, None,
                                [] if instance_only else [s["name"] for s in snaps])
        made = True
        devices = dict(inst.rec["devices"])
        root = _root_name(devices) or _root_name(inst.devices) or "root"
        devices[root] = {**(devices.get(root) or inst.devices.get(root) or {"type": "disk", "path": "/"}),
                         "pool": target}
        plan = {k: inst.rec[k] for k in ("architecture", "ephemeral", "description", "config", "profiles")}
        plan["devices"] = devices
        await asyncio.to_thread(instances.driver.delete, instances.driver_name(inst.project, inst.name))
        async with d.db.transaction() as tx:
            await q.update(tx, inst.project, inst.name, plan)
            if instance_only:
                for s in snaps:
                    await q.delete_snapshot(tx, inst.rec["id"], s["name"])
            if new != inst.name:
                await q.rename(tx, inst.project, inst.name, new)
            row = await qs.volume(tx, inst.pool, inst.project, "container", inst.name)
            if row is not None:   # the instance volume's own record moves with it
                await qs.move_volume(tx, row["id"], target, new)
    except BaseException:
        if made:
            await asyncio.to_thread(dst.delete_instance, new_vol)
        with_config = await instances.load(inst.project, inst.name)
        await asyncio.to_thread(instances.driver.create, instances.spec(with_config))
        raise
    if new != inst.name:
        old_logs, new_logs = instances.log_dir(inst.project, inst.name), instances.log_dir(inst.project, new)
        if os.path.exists(old_logs):
            await asyncio.to_thread(shutil.move, old_logs, new_logs)
    moved = await instances.load(inst.project, new)
    await asyncio.to_thread(instances.driver.create, instances.spec(moved))
    if new != inst.name:
        await asyncio.to_thread(layout.remove, instances, inst.project, inst.name)
    await asyncio.to_thread(src.delete_instance, old_vol)
    await asyncio.to_thread(layout.sync, instances, moved)
    await layout.write_backup_file(instances, inst.project, new)
