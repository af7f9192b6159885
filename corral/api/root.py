"""GET / and GET/PUT/PATCH /1.0: server info and server config."""
from aiohttp import web

from corral.api import decode, response
from corral.api.auth import allowed_projects, trusted
from corral.api.extensions import EXTENSIONS
from corral.api.member_target import forward_to_target, remote_member
from corral.api.request import check_etag, daemon, requestor
from corral.api.ui import is_browser
from corral.apitypes import ServerPut
from corral.cluster.peer import PeerError
from corral.errors import CorralError

routes = web.RouteTableDef()


@routes.get("/")
async def get_root(request: web.Request):
    if is_browser(request):   # LXD sends a browser to its UI
        raise web.HTTPMovedPermanently("/ui/")   # 301, as lxd/api.go
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


def _untrusted() -> dict:
    """LXD's api.ServerUntrusted: what a client without a trusted certificate may see."""
    return {"api_extensions": EXTENSIONS, "api_status": "stable", "api_version": "1.0",
            "auth": "untrusted", "public": False, "auth_methods": ["tls"]}


@routes.get("/1.0")
async def get_server(request: web.Request):
    d = daemon(request)
    if not trusted(request):
        return response.sync(_untrusted())
    if allowed_projects(request) is None:
        if (answer := await forward_to_target(request)) is not None:   # ?target=: that member's view
            return answer
    elif (address := await remote_member(request)) is not None:
        return await _restricted_remote(request, address)
    srv = _server(d)
    # LXD echoes the requested project here without looking it up (pylxd reads it back)
    srv["environment"] = {**srv["environment"], "project": request.query.get("project") or "default"}
    if allowed_projects(request) is not None:
        srv["config"] = {}  # a restricted client does not see the server configuration
    return response.sync(srv, etag=d.config.public())


async def _restricted_remote(request: web.Request, address: str):
    """Another member's /1.0 for a restricted client: read as a peer, shown without its config."""
    try:
        srv = await daemon(request).cluster.peer.call(address, "GET", request.path_qs)
    except PeerError as e:
        raise CorralError(str(e), 503) from None
    srv["config"] = {}
    return response.sync(srv)


async def _update(request: web.Request, *, replace: bool):
    d = daemon(request)
    req = await decode.read(request, ServerPut)
    await d.config.update(req.config, replace=replace, etag_check=lambda cur: check_etag(request, cur))
    d.events.lifecycle("config-updated", "/1.0", requestor=requestor(request))
    return response.empty()


@routes.put("/1.0")
async def put_server(request: web.Request):
    return await _update(request, replace=True)


@routes.patch("/1.0")
async def patch_server(request: web.Request):
    return await _update(request, replace=False)
