"""The states of instances held by other members, for a listing on this one (LXD's instancesGet): one
request per member holding some, all in parallel, each asking the member for its own instances only
(`GET /1.0/instances?recursion=N` marked as forwarded, so it does not ask further). A member that is
offline (no heartbeat within cluster.offline_threshold) is not asked; one that fails or does not
answer in time (corral/cluster/fanout.py) is not waited on: the caller lists its instances as Error.
"""
from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from corral.cluster import fanout
from corral.db.queries import cluster as qc


def listing_path(recursion: int, project: str | None) -> str:
    """What a member is asked: its instances of `project` (None: of every project)."""
    query = {"recursion": str(recursion)}
    if project is None:
        query["all-projects"] = "true"
    else:
        query["project"] = project
    return "/1.0/instances?" + urlencode(query)


async def fetch(state, member_ids: set[int], recursion: int, project: str | None,
                headers: dict) -> dict[int, list[dict] | fanout.MemberError]:
    """{member id: the instances it lists (recursion 1 or 2), or why it could not}."""
    cluster = state.cluster
    async with state.db.session() as tx:
        rows = {m["id"]: m for m in await qc.members(tx) if m["id"] in member_ids}
    out: dict[int, list[dict] | fanout.MemberError] = {}
    ask = []
    for mid in member_ids:
        m = rows.get(mid)
        if m is None:
            out[mid] = fanout.MemberError(str(mid), "not a cluster member")
        elif not cluster.online(m):
            out[mid] = fanout.MemberError(m["name"], "offline")
        else:
            ask.append(m)
    answers = await fanout.ask_all(cluster.peer, ask, listing_path(recursion, project), headers)
    for m in ask:
        got = answers[m["name"]]
        if not isinstance(got, fanout.MemberError) and not isinstance(got, list):
            got = fanout.MemberError(m["name"], "not a list of instances")
        out[m["id"]] = got
    return out


async def change_state(state, member_ids: set[int], project: str, body: dict, headers: dict) -> list[str]:
    """PUT /1.0/instances (every instance's state) on each of these other members, for their own
    instances, and wait for their operations; the failures, one text per member."""
    cluster = state.cluster
    async with state.db.session() as tx:
        rows = [m for m in await qc.members(tx) if m["id"] in member_ids]
    path = "/1.0/instances?" + urlencode({"project": project})

    async def one(m) -> str | None:
        if not cluster.online(m):
            return f'Cluster member "{m["name"]}" is offline'
        try:
            op = await fanout.ask(cluster.peer, m, path, headers, method="PUT", body=body)
            if not isinstance(op, dict) or not op.get("id"):
                return f'Cluster member "{m["name"]}": no operation'
            done = await fanout.ask(cluster.peer, m, f"/1.0/operations/{op['id']}/wait?timeout=-1", headers,
                                    answer_timeout=None)
        except fanout.MemberError as e:
            return f'Cluster member "{m["name"]}": {e.reason}'
        if isinstance(done, dict) and done.get("status") != "Success":
            return done.get("err") or f'Cluster member "{m["name"]}": {done.get("status")}'
        return None
    return [e for e in await asyncio.gather(*(one(m) for m in rows)) if e]
