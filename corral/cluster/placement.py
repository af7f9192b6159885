"""Where a new instance goes in a cluster, as LXD's scheduler does: a `target` member when one is
named, otherwise the online member holding the fewest instances. Evacuated members are never picked.
"""
from __future__ import annotations

from corral.db.queries import nodes as qn
from corral.errors import BadRequest, NotFound


async def choose(state, project: str, target: str | None = None, *, exclude: frozenset[str] | set[str] = frozenset(),
                 instance_type: str = "container") -> str:
    """The name of the member a new instance of `project` goes to ("none" standalone)."""
    cluster = state.cluster
    if not cluster.clustered:
        if target and target != cluster.server_name:
            raise NotFound("Cluster member not found") if target != "none" else BadRequest(
                "Target only allowed when clustered")
        return cluster.server_name
    async with state.db.session() as tx:
        members = await qn.members(tx)
        counts = await qn.instance_counts(tx)
    if target:
        m = next((m for m in members if m["name"] == target), None)
        if m is None:
            raise NotFound("Cluster member not found")
        return m["name"]
    candidates = [m for m in members if cluster.online(m) and m["state"] != qn.EVACUATED
                  and m["name"] not in exclude]
    if not candidates:
        raise BadRequest("No suitable cluster member could be found")
    return min(candidates, key=lambda m: (counts.get(m["id"], 0), m["id"]))["name"]
