"""GET /1.0/instances on any member lists every instance of the cluster, as LXD's instancesGet: the
records come from the database; the states of this member's instances are read here (in one go,
corral/instance/listing.py), those of the other members' instances are asked of their members, one
request per member, in parallel with the local work (corral/cluster/remote_instances.py). The
instances of a member that is offline or does not answer in time are listed with status Error
(status_code 112) and their location, as LXD lists them, rather than failing the listing.

A listing forwarded by another member (it asks for our part) lists this member's instances only.
Recursion 0 without a filter needs no state: the names come from the database alone."""
from __future__ import annotations

import asyncio

from aiohttp import web

from corral.api import filtering, response
from corral.api.forward import FORWARDED, forwarded
from corral.api.request import daemon, project, recursion
from corral.cluster import remote_instances
from corral.instance import listing


def _url(base: str, name: str, proj: str) -> str:
    return f"{base}/{name}" + ("" if proj == "default" else f"?project={proj}")


def _error_entry(insts, inst, rec: int) -> dict:
    """An instance whose member could not be asked: its record, status Error, its location."""
    out = insts.render(inst, "Error")
    if rec >= 2:
        out.update({"state": None, "snapshots": None, "backups": None})
    return out


async def _local(insts, loaded: list, rec: int, clauses) -> list[dict]:
    if clauses:
        loaded = [i for i, r in zip(loaded, listing.render_many(insts, loaded)) if filtering.matches(r, clauses)]
    if rec >= 2:
        return await listing.render_all(insts, loaded)
    return listing.render_many(insts, loaded)


async def list_instances(request: web.Request) -> web.Response:
    d = daemon(request)
    insts = d.instances
    all_projects = request.query.get("all-projects") in ("true", "1")
    proj = None if all_projects else await project(request)
    loaded = await insts.load_all(proj)
    if forwarded(request):
        loaded = [i for i in loaded if i.local]
    rec = recursion(request)
    clauses = filtering.parse(request.query["filter"]) if request.query.get("filter") else None
    base = request.path.rstrip("/")
    if rec == 0 and not clauses:
        return response.sync([_url(base, i.name, i.project) for i in loaded])

    remote: dict[int, list] = {}
    for inst in loaded:
        if not inst.local:
            remote.setdefault(int(inst.rec["node_id"]), []).append(inst)
    asked = None
    if remote:   # asked first: the members work while the local states are read
        asked = asyncio.ensure_future(remote_instances.fetch(d.state, set(remote), max(rec, 1), proj,
                                                             {FORWARDED: "1"}))
    try:
        out = await _local(insts, [i for i in loaded if i.local], rec, clauses)
    except BaseException:
        if asked is not None:
            asked.cancel()
        raise
    answers = await asked if asked is not None else {}
    for mid, members_insts in remote.items():
        got = answers.get(mid)
        if isinstance(got, list):
            entries = [r for r in got if isinstance(r, dict)]
        else:
            entries = [_error_entry(insts, i, rec) for i in members_insts]
        out += [r for r in entries if not clauses or filtering.matches(r, clauses)]
    out.sort(key=lambda r: (r.get("project") or "", r.get("name") or ""))
    if rec == 0:
        return response.sync([_url(base, r["name"], r.get("project") or "default") for r in out])
    return response.sync(out)
