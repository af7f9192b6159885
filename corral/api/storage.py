"""/1.0/storage-pools. In a cluster a pool is created per member then globally, deleted on every
member (corral/storage/cluster_pools.py); `?target=MEMBER` on a GET, PUT, PATCH or resources is
answered by that member (its own keys and status), as LXD forwards it."""
from aiohttp import web

from corral.api import response
from corral.api.auth import visible_used_by
from corral.api.member_target import notification, target, to_target
from corral.api.request import check_etag, daemon, read_object, recursion, requestor
from corral.storage import cluster_pools

routes = web.RouteTableDef()


def _clustered(d) -> bool:
    return bool(d.cluster.clustered)


async def _full(d, p: dict, request: web.Request) -> dict:
    view = cluster_pools.render(p, _clustered(d), member_view=bool(target(request)))
    return {"config": view["config"], "description": p["description"], "name": p["name"], "driver": p["driver"],
            "used_by": visible_used_by(request, await d.pool_used_by(p["name"])), "status": view["status"],
            "locations": view["locations"]}


def _etag(view: dict) -> dict:
    return {"config": view["config"], "description": view["description"]}


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
    name = await cluster_pools.create(d, await read_object(request), target(request), requestor(request),
                                      notification=notification(request))
    return response.created(f"/1.0/storage-pools/{name}")


@routes.get("/1.0/storage-pools/{name}")
async def get_pool(request: web.Request):
    remote = await to_target(request)
    if remote is not None:
        return remote
    d = daemon(request)
    p = await d.pools.get(request.match_info["name"])
    view = await _full(d, p, request)
    return response.sync(view, etag=_etag(view))


async def _update(request: web.Request, replace: bool):
    remote = await to_target(request)
    if remote is not None:
        return remote
    d = daemon(request)
    await cluster_pools.update(d, request.match_info["name"], await read_object(request), replace=replace,
                               target=target(request), requestor=requestor(request),
                               notification=notification(request),
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
    await cluster_pools.delete(d, request.match_info["name"], requestor(request), notification=notification(request))
    return response.empty()


@routes.get("/1.0/storage-pools/{name}/resources")
async def pool_resources(request: web.Request):
    remote = await to_target(request)
    if remote is not None:
        return remote
    return response.sync(await daemon(request).pools.resources(request.match_info["name"]))
