"""Evacuating and restoring a cluster member (POST /1.0/cluster/members/NAME/state, `lxc cluster
evacuate|restore NAME`; LXD 5.0's evacuateClusterMember / restoreClusterMember), run from whichever
member got the request, as operations ("Evacuating cluster member", "Restoring cluster member")
whose metadata says what they do ("evacuation_progress", LXD's texts).

Evacuate: the member's state becomes EVACUATED (2: new instances avoid it, placement.choose skips
it); each of its instances, by its `cluster.evacuate` (auto | migrate | stop): a running one is
stopped (volatile.last_state.power stays RUNNING), then unless it is to be only stopped it moves to
the online member with the fewest instances (volatile.evacuate.origin = the member), where a
running one is started again. `auto` migrates unless a device is bound to the member (LXD's
canMigrate: only the root disk and NICs of managed networks move along).
Restore: the member's instances stopped by the evacuation start again; every instance whose
volatile.evacuate.origin names it comes back (stopped for the move, started again if it ran) and
loses the key; the state becomes CREATED (0).

Refused with nothing changed: a member already evacuated (or, to restore, not evacuated), an offline
member, and -- unlike LXD 5.0.2, which then only stops the instances -- evacuating the last online
member that is not evacuated (its instances would have nowhere to go).
"""
from __future__ import annotations

import asyncio

from corral.cluster import migrate, placement
from corral.db.queries import moves as qm
from corral.db.queries import nodes as qn
from corral.errors import BadRequest, NotFound
from corral.operations import Work

ORIGIN = "volatile.evacuate.origin"
_locks: dict[str, asyncio.Lock] = {}


def mode(config: dict, devices: dict) -> str:
    """"migrate" or "stop" for an instance with this expanded config and devices."""
    how = config.get("cluster.evacuate") or "auto"
    if how in ("migrate", "live-migrate"):   # live: a stateless move here (no CRIU)
        return "migrate"
    if how == "stop":
        return "stop"
    for dev in devices.values():
        kind = dev.get("type")
        if kind == "disk" and dev.get("path") == "/" and not dev.get("source"):
            continue
        if kind == "nic" and dev.get("network"):
            continue
        return "stop"
    return "migrate"


def _progress(op, text: str) -> None:
    op.update_metadata({"evacuation_progress": text})


async def _member(state, name: str) -> dict:
    async with state.db.session() as tx:
        m = await qn.member(tx, name)
    if m is None:
        raise NotFound("Cluster member not found")
    return m


def _lock(name: str) -> asyncio.Lock:
    return _locks.setdefault(name, asyncio.Lock())


# ---- evacuate ---------------------------------------------------------------------------------------

async def _work(state, name: str, description: str, step) -> Work:
    """The operation of an evacuation or a restore of member `name` (one at a time per member)."""
    await _member(state, name)

    async def run(op):
        async with _lock(name):
            await step(state, name, op)
    return Work(description=description, run=run)


async def evacuate_work(state, name: str) -> Work:
    return await _work(state, name, "Evacuating cluster member", evacuate)


async def evacuate(state, name: str, op) -> None:
    cluster = state.cluster
    async with state.db.transaction() as tx:
        members = await qn.members(tx)
        m = next((x for x in members if x["name"] == name), None)
        if m is None:
            raise NotFound("Cluster member not found")
        if m["state"] == qn.EVACUATED:
            raise BadRequest("Cluster member is already evacuated")
        if not cluster.online(m):
            raise BadRequest(f'Cluster member "{name}" is offline')
        if not any(x["id"] != m["id"] and x["state"] != qn.EVACUATED and cluster.online(x) for x in members):
            raise BadRequest(f'Cluster member "{name}" is the last online member that is not evacuated: '
                             "its instances would have nowhere to go")
        await qm.set_node_state(tx, m["id"], qn.EVACUATED)
        instances = await qm.on_node(tx, m["id"])
    for i in instances:
        await _evacuate_one(state, op, m, i["project"], i["name"])


async def _evacuate_one(state, op, m: dict, project: str, name: str) -> None:
    loaded = await state.instances.load(project, name)
    how = mode(loaded.config, loaded.devices)
    info = await migrate.instance_info(state, m["address"], project, name)
    running = info.get("status") != "Stopped"
    if running:
        _progress(op, f'Stopping "{name}" in project "{project}"')
        await migrate.member_action(state, m["address"], project, name, "stop", remember_running=True,
                                    keep=how == "migrate")
    if how == "stop":
        return
    target = await placement.choose(state, project, exclude={m["name"]})
    _progress(op, f'Migrating "{name}" in project "{project}" to "{target}"')
    await _set_origin(state, project, name, m["name"])
    try:
        await migrate.move(state, project, name, target, name, False)
    except BaseException:
        await _set_origin(state, project, name, None)
        raise
    if running:
        _progress(op, f'Starting "{name}" in project "{project}"')
        await migrate.member_action(state, (await _member(state, target))["address"], project, name, "start")


async def _set_origin(state, project: str, name: str, origin: str | None) -> None:
    async with state.db.transaction() as tx:
        await qm.set_config_key(tx, project, name, ORIGIN, origin)


# ---- restore ----------------------------------------------------------------------------------------

async def restore_work(state, name: str) -> Work:
    return await _work(state, name, "Restoring cluster member", restore)


async def restore(state, name: str, op) -> None:
    m = await _member(state, name)
    if m["state"] != qn.EVACUATED:
        raise BadRequest("Cluster member is already restored")
    if not state.cluster.online(m):
        raise BadRequest(f'Cluster member "{name}" is offline')
    async with state.db.session() as tx:
        local = await qm.on_node(tx, m["id"])
        marked = await qm.with_config(tx, ORIGIN, name)
    for i in local:   # stopped by the evacuation (not by their users): started again
        info = await migrate.instance_info(state, m["address"], i["project"], i["name"])
        if info.get("last_state") == "RUNNING" and info.get("status") == "Stopped":
            _progress(op, f'Starting "{i["name"]}" in project "{i["project"]}"')
            await migrate.member_action(state, m["address"], i["project"], i["name"], "start")
    for r in marked:
        if r["node"] == name:   # a move that failed half-way left it here
            await _set_origin(state, r["project"], r["name"], None)
            continue
        await _bring_back(state, op, m, r["project"], r["name"], r["node"])
    async with state.db.transaction() as tx:
        await qm.set_node_state(tx, m["id"], qn.CREATED)


async def _bring_back(state, op, m: dict, project: str, name: str, node: str) -> None:
    _progress(op, f'Migrating "{name}" in project "{project}" from "{node}"')
    src = await _member(state, node)
    info = await migrate.instance_info(state, src["address"], project, name)
    running = info.get("status") != "Stopped"
    if running:
        _progress(op, f'Stopping "{name}" in project "{project}"')
        await migrate.member_action(state, src["address"], project, name, "stop", keep=True)
    await migrate.move(state, project, name, m["name"], name, False)
    await _set_origin(state, project, name, None)
    if running:
        _progress(op, f'Starting "{name}" in project "{project}"')
        await migrate.member_action(state, m["address"], project, name, "start")
