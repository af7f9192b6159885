"""Moving an instance to another cluster member (POST /1.0/instances/NAME?target=MEMBER with
"migration": true, what `lxc move c1 --target m2` sends; LXD's instancePostClusteringMigrate), run
from whichever member got the request.

The checks LXD makes before its operation answer at once (an unknown or offline target, an instance
with backups); the operation then asks the member the instance lives on to send it
(POST /internal/cluster/instance-send): that member stops it for a stateless move (`live` false; a
live move needs CRIU and is refused, as LXD without CRIU refuses it), has the target pull the
volume and its snapshots, moves the records and removes its copy last
(corral/instance/clustermove.py). Evacuation (evacuate.py) moves instances the same way.

Members are reached over state.cluster.peer; nothing here runs instance code in this process.
"""
from __future__ import annotations

from urllib.parse import urlencode

from corral.cluster.peer import PeerError
from corral.db.queries import moves as qm
from corral.db.queries import nodes as qn
from corral.errors import NotImplementedFeature, BadRequest, Conflict, Forbidden, NotFound
from corral.names import check_instance_name
from corral.operations import Work

LONG = 24 * 3600    # a move copies whole volumes: no practical limit on the member call


def resources(name: str, project: str) -> dict:
    url = f"/1.0/instances/{name}" + ("" if project == "default" else f"?project={project}")
    return {"containers": [f"/1.0/containers/{name}"], "instances": [url]}


async def call(state, address: str, method: str, path: str, body=None, timeout: float = LONG):
    """A member call whose failure is the member's error text (a 400 to whoever asked)."""
    try:
        return await state.cluster.peer.call(address, method, path, body, timeout=timeout)
    except PeerError as e:
        raise BadRequest(str(e)) from None


async def instance_info(state, address: str, project: str, name: str) -> dict:
    """What the member at `address` (where the instance lives) says of it: status, backups, last_state."""
    q = urlencode({"project": project, "name": name})
    return await call(state, address, "GET", f"/internal/cluster/instance-info?{q}", timeout=30)


async def member_action(state, address: str, project: str, name: str, action: str, **extra) -> dict:
    """Start or stop an instance on the member it lives on."""
    return await call(state, address, "POST", "/internal/cluster/instance-state",
                      {"project": project, "name": name, "action": action, **extra})


async def _member(tx, name: str) -> dict | None:
    return await qn.member(tx, name)


async def check(state, project: str, name: str, target: str, new_name: str, *,
                allow_evacuated: bool = False) -> dict:
    """LXD's checks before the operation: {instance location row, target member row}."""
    cluster = state.cluster   # (restricted.cluster.target: the API layer's check, corral/api/auth.py)
    async with state.db.session() as tx:
        member = await _member(tx, target)
        where = await qm.location(tx, project, name)
        taken = new_name != name and await qm.location(tx, project, new_name) is not None
    if member is None:
        raise NotFound("Failed to get target node: Cluster member not found")
    if not cluster.online(member):
        raise BadRequest("Target node is offline")
    if member["state"] == qn.EVACUATED and not allow_evacuated:
        raise Forbidden("Cluster member is evacuated")   # as placement answers a launch there
    if where is None:
        raise NotFound("Failed to get address of instance's member: Instance not found")
    if where.get("type") == 1:
        raise NotImplementedFeature("moving virtual machines between cluster members")
    check_instance_name(new_name)
    if taken:
        raise Conflict(f'Name "{new_name}" already in use')
    source = await _source(state, where)
    if source is not None and source["id"] != member["id"] and cluster.online(source):
        info = await instance_info(state, source["address"], project, name)
        if info.get("backups"):
            raise BadRequest("Instance has backups")
    return {"where": where, "target": member, "source": source}


async def _source(state, where: dict) -> dict | None:
    async with state.db.session() as tx:
        return await _member(tx, where["node"]) if where.get("node") else None


async def move(state, project: str, name: str, target: str, new_name: str, live: bool) -> None:
    """The operation's work: the instance's member sends it to `target` (checks made by `check`)."""
    async with state.db.session() as tx:
        where = await qm.location(tx, project, name)
    if where is None:
        raise NotFound("Instance not found")
    if where["node"] == target:
        raise BadRequest("Target must be different than instance's current location")
    source = await _source(state, where)
    if source is None or not state.cluster.online(source):
        raise BadRequest("The cluster member hosting the instance is offline")
    await call(state, source["address"], "POST", "/internal/cluster/instance-send",
               {"project": project, "name": name, "new_name": new_name, "target": target, "live": live})


async def move_work(state, project: str, name: str, target: str, new_name: str = "", live: bool = True) -> Work:
    """POST /1.0/instances/NAME?target=TARGET {"migration": true}: checked now, moved by the operation."""
    new_name = new_name or name
    await check(state, project, name, target, new_name)

    async def run(_op):
        await move(state, project, name, target, new_name, live)

    return Work(description="Migrating instance", project=project, resources=resources(name, project), run=run)
