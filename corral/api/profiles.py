"""/1.0/profiles"""
from aiohttp import web

from corral.api import decode, response
from corral.api.request import check_etag, daemon, project, recursion, requestor
from corral.apitypes import ProfilePost, ProfilePut, ProfilesPost
from corral.profiles import url

routes = web.RouteTableDef()


@routes.get("/1.0/profiles")
async def list_profiles(request: web.Request):
    d, proj = daemon(request), await project(request, "profiles")
    if recursion(request):
        return response.sync(await d.profiles.get_all(proj))
    return response.sync([url(n, proj) for n in await d.profiles.names(proj)])


@routes.post("/1.0/profiles")
async def create_profile(request: web.Request):
    d, proj = daemon(request), await project(request, "profiles")
    name = await d.profiles.create(proj, await decode.read(request, ProfilesPost), requestor(request))
    return response.created(url(name, proj))


@routes.get("/1.0/profiles/{name}")
async def get_profile(request: web.Request):
    d, proj = daemon(request), await project(request, "profiles")
    p = await d.profiles.get(proj, request.match_info["name"])
    return response.sync(p, etag=d.profiles.etag_fields(p))


async def _update(request: web.Request, replace: bool):
    d, proj = daemon(request), await project(request, "profiles")
    name = request.match_info["name"]
    await d.profiles.update(proj, name, await decode.read(request, ProfilePut), replace=replace,
                            requestor=requestor(request),
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
    d, proj = daemon(request), await project(request, "profiles")
    req = await decode.read(request, ProfilePost)
    await d.profiles.rename(proj, request.match_info["name"], req.name, requestor(request))
    return response.created(url(req.name, proj))


@routes.delete("/1.0/profiles/{name}")
async def delete_profile(request: web.Request):
    d, proj = daemon(request), await project(request, "profiles")
    await d.profiles.delete(proj, request.match_info["name"], requestor(request))
    return response.empty()
