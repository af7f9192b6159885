"""/1.0/resources, /1.0/warnings, /1.0/cluster (not clustered yet)."""
import asyncio
import dataclasses

from aiohttp import web

from corral.api import decode, response
from corral.api.auth import allowed_projects, check_project
from corral.api.request import daemon, recursion
from corral.apitypes import ClusterPut, WarningPut
from corral.config.storage import member_keys
from corral.operations import Work
from corral.errors import BadRequest, Forbidden, NotImplementedFeature

routes = web.RouteTableDef()


@routes.get("/1.0/resources")
async def get_resources(request: web.Request):
    from corral.resources import host_resources
    return response.sync(await asyncio.to_thread(host_resources))


@routes.get("/1.0/warnings")
async def list_warnings(request: web.Request):
    warnings = await daemon(request).warnings.get_all()
    if request.query.get("project"):   # LXD: ?project= narrows the list to that project's warnings
        check_project(request, request.query["project"])
        warnings = [w for w in warnings if w["project"] == request.query["project"]]
    allowed = allowed_projects(request)
    if allowed is not None:   # a restricted client sees the warnings of its projects only
        warnings = [w for w in warnings if w["project"] in allowed]
    if recursion(request):
        return response.sync(warnings)
    return response.sync([f"/1.0/warnings/{w['uuid']}" for w in warnings])


@routes.get("/1.0/warnings/{uuid}")
async def get_warning(request: web.Request):
    w = await daemon(request).warnings.get(request.match_info["uuid"])
    if allowed_projects(request) is not None and w["project"] not in allowed_projects(request):
        raise Forbidden("not authorized: the warning is not of this restricted certificate's projects")
    return response.sync(w, etag={"status": w["status"]})


@routes.route("PUT", "/1.0/warnings/{uuid}")
@routes.route("PATCH", "/1.0/warnings/{uuid}")
async def update_warning(request: web.Request):
    req = await decode.read(request, WarningPut)
    await daemon(request).warnings.set_status(request.match_info["uuid"], req.status)
    return response.empty()


@routes.delete("/1.0/warnings/{uuid}")
async def delete_warning(request: web.Request):
    await daemon(request).warnings.delete(request.match_info["uuid"])
    return response.empty()


@routes.get("/1.0/cluster")
async def get_cluster(request: web.Request):
    """A standalone server, as LXD answers when not clustered (`lxc cluster list`: "LXD server isn't
    part of a cluster"); member_config lists what a joining member would have to give."""
    member_config = []
    if allowed_projects(request) is None:   # pools are host-wide: not for restricted certificates
        for p in sorted(await daemon(request).pools.get_all(), key=lambda p: p["name"]):
            for key in member_keys(p["driver"]):   # LXD's clusterGetMemberConfig
                member_config.append({"entity": "storage-pool", "name": p["name"], "key": key, "value": "",
                                      "description": f'"{key}" property for storage pool "{p["name"]}"'})
    c = daemon(request).cluster
    if c.clustered:
        return response.sync({"server_name": c.server_name, "enabled": True, "member_config": []})
    return response.sync({"server_name": "", "enabled": False, "member_config": member_config})


@routes.route("PUT", "/1.0/cluster")
async def put_cluster(request: web.Request):
    req = await decode.read(request, ClusterPut)   # a malformed body gets LXD's decoding error first
    c = daemon(request).cluster
    if req.cluster_address:
        return response.operation(request, c.join_work(dataclasses.asdict(req)))
    if req.enabled:
        await c.enable(req.server_name)     # LXD answers with an operation, done by then
        return response.operation(request, Work(description="Enabling clustering", run=_done))
    raise NotImplementedFeature("disabling clustering")


async def _done(_op):
    return None


@routes.get("/1.0/cluster/members")
async def cluster_members(request: web.Request):
    c = daemon(request).cluster
    if not c.clustered:
        raise BadRequest("Server isn't part of a cluster")
    roles = await c.raft_roles()
    leader = await c.leader_address()
    out = []
    for m in await c.members():
        role = roles.get(m["id"], "")
        r = (["database-leader"] if m["address"] == leader else []) + \
            (["database"] if role == "voter" else ["database-standby"] if role == "stand-by" else [])
        out.append({"server_name": m["name"], "url": f"https://{m['address']}", "database": role == "voter",
                    "status": "Online" if c.online(m) else "Offline", "roles": r})
    return response.sync(out if recursion(request) else [f"/1.0/cluster/members/{m['server_name']}" for m in out])
