"""/1.0/profiles"""
from aiohttp import web

from corral.api import response
from corral.api.request import check_etag, daemon, project, read_object, recursion, requestor
from corral.profiles import url

routes = web.RouteTableDef()


async def _project(request: web.Request) -> str:
    """The project whose profiles the request's project uses (default's without features.profiles)."""
    return await daemon(request).profiles.project_of(await project(request))


@routes.get("/1.0/profiles")
async def list_profiles(request: web.Request):
    d, proj = daemon(request), await _project(request)
    if recursion(request):
        return response.sync(await d.profiles.get_all(proj))
    return response.sync([url(n, proj) for n in await d.profiles.names(proj)])


@routes.post("/1.0/profiles")
async def create_profile(request: web.Request):
    d, proj = daemon(request), await _project(request)
    name = await d.profiles.create(proj, await read_object(request), requestor(request))
    return response.created(url(name, proj))


@routes.get("/1.0/profiles/{name}")
async def get_profile(request: web.Request):
    d, proj = daemon(request), await _project(request)
    p = await d.profiles.get(proj, request.match_info["name"])
    return response.sync(p, etag=d.profiles.etag_fields(p))


async def _update(request: web.Request, replace: bool):
    d, proj = daemon(request), await _project(request)
    name = request.match_info["name"]
    await d.profiles.update(proj, name, await read_object(request), replace=replace, requestor=requestor(request),
                            etag_check=lambda cur: check_etag(request, cur))
    return response.empty()


@routes.put("/1.0/profiles/{name}")
async def put_profile(request: web.Request):
    return await _update(request, True)


@routes.patch("/1.0/profiles/{name}")
async def patch_profile(request: web.Request):
    return await _update(request, False)


@routes.post("/1.0/profiles/{name}")
async def rename_profile(request: web.Request):
    d, proj = daemon(request), await _project(request)
    body = await read_object(request)
    await d.profiles.rename(proj, request.match_info["name"], body.get("name"), requestor(request))
    return response.created(url(body["name"], proj))


@routes.delete("/1.0/profiles/{name}")
async def delete_profile(request: web.Request):
    d, proj = daemon(request), await _project(request)
    await d.profiles.delete(proj, request.match_info["name"], requestor(request))
    return response.empty()
