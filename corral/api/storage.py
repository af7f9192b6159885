"""/1.0/storage-pools"""
from aiohttp import web

from corral.api import response
from corral.api.auth import visible_used_by
from corral.api.request import check_etag, daemon, read_object, recursion, requestor

routes = web.RouteTableDef()


async def _full(d, p: dict, request: web.Request) -> dict:
    return {"config": p["config"], "description": p["description"], "name": p["name"], "driver": p["driver"],
            "used_by": visible_used_by(request, await d.pool_used_by(p["name"])), "status": p["status"],
            "locations": ["none"]}


def _etag(p: dict) -> dict:
    return {"config": p["config"], "description": p["description"]}


@routes.get("/1.0/storage-pools")
async def list_pools(request: web.Request):
    d = daemon(request)
    pools = await d.pools.get_all()
    if recursion(request):
        return response.sync([await _full(d, p, request) for p in pools])
    return response.sync([f"/1.0/storage-pools/{p['name']}" for p in pools])


@routes.post("/1.0/storage-pools")
async def create_pool(request: web.Request):
    d = daemon(request)
    name = await d.pools.create(await read_object(request), requestor(request))
    return response.created(f"/1.0/storage-pools/{name}")


@routes.get("/1.0/storage-pools/{name}")
async def get_pool(request: web.Request):
    d = daemon(request)
    p = await d.pools.get(request.match_info["name"])
    return response.sync(await _full(d, p, request), etag=_etag(p))


async def _update(request: web.Request, replace: bool):
    d = daemon(request)
    name = request.match_info["name"]
    await d.pools.update(name, await read_object(request), replace=replace, requestor=requestor(request),
                         etag_check=lambda cur: check_etag(request, cur))
    return response.empty()


@routes.put("/1.0/storage-pools/{name}")
async def put_pool(request: web.Request):
    return await _update(request, True)


@routes.patch("/1.0/storage-pools/{name}")
async def patch_pool(request: web.Request):
    return await _update(request, False)


@routes.delete("/1.0/storage-pools/{name}")
async def delete_pool(request: web.Request):
    d = daemon(request)
    name = request.match_info["name"]
    await d.pools.get(name)
    await d.pools.delete(name, await d.pool_used_by(name), requestor(request))
    return response.empty()


@routes.get("/1.0/storage-pools/{name}/resources")
async def pool_resources(request: web.Request):
    return response.sync(await daemon(request).pools.resources(request.match_info["name"]))
