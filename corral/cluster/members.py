"""Cluster members as the API shows and edits them (LXD 5.0's /1.0/cluster/members): the `nodes`
rows with their raft roles, the leader and the heartbeat state, rendered by corral/cluster/render.py;
edits of the writable fields with LXD 5.0.2's checks, in its order and with its texts.

`state.cluster` answers the raft questions (`raft_roles()`, `leader_address()`, `member_id`).
"""
from __future__ import annotations

from datetime import datetime, timezone

from corral.apitypes import ClusterMemberPut
from corral.cluster import render
from corral.config.keys import as_string, lookup
from corral.config.cluster_member import MEMBER
from corral.db.queries import nodes as qnodes
from corral.errors import BadRequest, Conflict, NotFound

NOT_FOUND = "Cluster member not found"


async def get_all(state) -> list[dict]:
    """Every member (pending ones left out), rendered, in id order."""
    cluster = state.cluster
    async with state.db.session() as tx:
        rows = await qnodes.members(tx)
        highest = await qnodes.max_version(tx)
    roles = await cluster.raft_roles()
    leader = await cluster.leader_address()
    threshold = float(state.config.get("cluster.offline_threshold") or 20)
    now = datetime.now(timezone.utc)
    return [render.member(r, raft_role=roles.get(r["id"]), leader_address=leader, threshold_seconds=threshold,
                          max_version=highest, now=now, local=r["id"] == cluster.member_id) for r in rows]


async def get(state, name: str) -> dict:
    for m in await get_all(state):
        if m["server_name"] == name:
            return m
    raise NotFound(NOT_FOUND)


def check_config(config: dict) -> None:
    """LXD's clusterValidateConfig (its texts), over the declared member keys (corral/config/cluster_member.py)."""
    for key, value in config.items():
        declared = lookup(MEMBER, key)
        if declared is None:
            raise BadRequest(f'Invalid cluster configuration key "{key}"')
        if value == "":   # `lxc cluster unset` sends the key empty: it is removed
            continue
        try:
            declared.parse(value)
        except (ValueError, TypeError):
            raise BadRequest(f'Invalid cluster configuration key "{key}" value') from None


def role_codes(roles: list[str]) -> list[int]:
    """The stored roles of a request: the automatic database-* ones are skipped, as LXD does."""
    out = []
    for role in roles:
        if role in render.AUTOMATIC_ROLES:
            continue
        if role not in qnodes.ROLE_CODES:
            raise BadRequest(f'Update roles: Invalid cluster role "{role}"')
        out.append(qnodes.ROLE_CODES[role])
    return out


def check_roles(current: list[str], wanted: list[str]) -> None:
    """The "database" role follows raft (a voter): a client can neither drop nor add it."""
    if render.DATABASE in current and render.DATABASE not in wanted:
        raise BadRequest(f'The "{render.DATABASE}" role cannot be dropped at this time')
    if render.DATABASE not in current and render.DATABASE in wanted:
        raise BadRequest(f'The "{render.DATABASE}" role cannot be added at this time')


async def update(state, name: str, current: dict, req: ClusterMemberPut, *, patch: bool) -> None:
    """PUT (and PATCH, which LXD 5.0 treats as a PUT except that config keys not sent are kept)
    of a member's roles, failure domain, description, config and cluster groups. `current` is the
    rendered member the request was checked against (its ETag)."""
    check_roles(current["roles"], req.roles)
    if not req.groups:
        raise BadRequest("Cluster members need to belong to at least one group")
    sent = {k: as_string(v, f'cluster member config key "{k}"') for k, v in (req.config or {}).items()
            if v is not None}
    check_config(sent)
    async with state.db.transaction() as tx:
        row = await qnodes.member(tx, name)
        if row is None:
            raise NotFound(NOT_FOUND)
        config = sent
        if patch:
            dropped = {k for k, v in (req.config or {}).items() if v is None}
            config = {**{k: v for k, v in row["config"].items() if k not in dropped}, **sent}
        codes = role_codes(req.roles)
        if not req.failure_domain:
            raise BadRequest("Update failure domain: Failure domain name can't be empty")
        ids = await qnodes.group_ids(tx, req.groups)
        if any(g not in ids for g in req.groups):
            raise NotFound("Update cluster groups: Failed to add member to cluster group: "
                           "Failed to get cluster group ID: Cluster group not found")
        await qnodes.update(tx, row["id"], description=req.description, roles=codes,
                            failure_domain=req.failure_domain, config={k: v for k, v in config.items() if v != ""},
                            groups=[ids[g] for g in req.groups])


async def check_rename(state, old: str, new: str) -> None:
    """Before `state.cluster.rename_member(old, new)`: the member exists, the new name is usable
    and free (LXD 5.0.2 takes an empty name, which leaves a member no URL can name: refused)."""
    if not new:
        raise BadRequest("A cluster member name is required")
    if "/" in new or new.strip() != new or new in (".", ".."):
        raise BadRequest(f'Invalid cluster member name "{new}"')
    async with state.db.session() as tx:
        if await qnodes.member(tx, old) is None:
            raise NotFound(NOT_FOUND)
        if await qnodes.name_taken(tx, new):
            raise Conflict(f'The cluster already has a member with name "{new}"')
