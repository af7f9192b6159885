"""/1.0/storage-pools (the basics; volumes and more drivers come with the storage layer)."""
import asyncio

from aiohttp import web

from corral.api import response
from corral.api.request import daemon, read_object, recursion, requestor
from corral.errors import NotImplementedFeature

routes = web.RouteTableDef()


async def _full(d, p: dict) -> dict:
    return {"config": p["config"], "description": p["description"], "name": p["name"], "driver": p["driver"],
            "used_by": await d.pool_used_by(p["name"]), "status": p["status"], "locations": ["none"]}


@routes.get("/1.0/storage-pools")
async def list_pools(request: web.Request):
    d = daemon(request)
    pools = await d.pools.get_all()
    if recursion(request):
        return response.sync([await _full(d, p) for p in pools])
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
    return response.sync(await _full(d, p), etag={"config": p["config"], "description": p["description"]})


@routes.delete("/1.0/storage-pools/{name}")
async def delete_pool(request: web.Request):
    d = daemon(request)
    name = request.match_info["name"]
    await d.pools.delete(name, await d.pool_used_by(name), requestor(request))
    return response.empty()


@routes.get("/1.0/storage-pools/{name}/resources")
async def pool_resources(request: web.Request):
    from corral.resources import storage_pool_resources
    drv = daemon(request).pools.driver(request.match_info["name"])
    return response.sync(await asyncio.to_thread(storage_pool_resources, drv.path))


@routes.route("PUT", "/1.0/storage-pools/{name}")
@routes.route("PATCH", "/1.0/storage-pools/{name}")
@routes.route("POST", "/1.0/storage-pools/{name}")
async def change_pool(request: web.Request):
    raise NotImplementedFeature("changing storage pools")
