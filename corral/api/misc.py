"""/1.0/resources (?target=: another member's, answered by it), /1.0/warnings (every member's; the
cluster endpoints: corral/api/cluster.py)."""
import asyncio

from aiohttp import web

from corral.api import decode, response
from corral.api.auth import allowed_projects, check_project
from corral.api.member_target import forward_to_target
from corral.api.request import daemon, recursion
from corral.apitypes import WarningPut
from corral.errors import Forbidden

routes = web.RouteTableDef()


@routes.get("/1.0/resources")
async def get_resources(request: web.Request):
    from corral.resources import host_resources
    if (answer := await forward_to_target(request)) is not None:   # ?target=: that member's host
        return answer
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
