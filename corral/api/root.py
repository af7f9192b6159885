"""GET / and GET/PUT/PATCH /1.0: server info and server config."""
from aiohttp import web

from corral.api import response
from corral.api.extensions import EXTENSIONS
from corral.api.request import check_etag, daemon, read_object, requestor

routes = web.RouteTableDef()


@routes.get("/")
async def get_root(request: web.Request):
    return response.sync(["/1.0"])


def _server(d) -> dict:
    return {
        "config": d.config.public(),
        "api_extensions": EXTENSIONS,
        "api_status": "stable",
        "api_version": "1.0",
        "auth": "trusted",
        "public": False,
        "auth_methods": ["tls"],
        "environment": d.environment(),
    }


@routes.get("/1.0")
async def get_server(request: web.Request):
    d = daemon(request)
    return response.sync(_server(d), etag=d.config.public())


async def _update(request: web.Request, *, replace: bool):
    d = daemon(request)
    check_etag(request, d.config.public())
    body = await read_object(request)
    new = body.get("config") or {}
    await d.config.update(new, replace=replace)
    d.events.lifecycle("config-updated", "/1.0", requestor=requestor(request))
    return response.empty()


@routes.put("/1.0")
async def put_server(request: web.Request):
    return await _update(request, replace=True)


@routes.patch("/1.0")
async def patch_server(request: web.Request):
    return await _update(request, replace=False)
