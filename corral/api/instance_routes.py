"""The route table of /1.0/instances (and its older alias /1.0/containers), shared by the modules
that serve it: instances.py (the collection, one instance, state, exec, logs, console),
instance_snapshots.py (snapshots, backups), instance_files.py (files, metadata, templates).

Every route under /1.0/instances/{name} answers for an instance of another cluster member by
forwarding the request to that member (LXD's ForwardedResponseIfInstanceIsRemote), here, once for
all handlers: the member answers it as its own (a forwarded request is never forwarded again).
A move to another member (POST /1.0/instances/{name}?target=) is left to its handler."""
from __future__ import annotations

import functools

from aiohttp import web

from corral.api.forward import forwarded, proxy
from corral.api.request import daemon, project
from corral.db.queries import locations as ql

routes = web.RouteTableDef()
PREFIXES = ("/1.0/instances", "/1.0/containers")


def route(method: str, suffix: str = ""):
    """Register a handler under /1.0/instances and /1.0/containers (forwarded to the instance's
    member when the route names an instance held by another member)."""
    def wrap(fn):
        handler = _forwarding(fn, method, suffix) if suffix.startswith("/{name}") else fn
        for prefix in PREFIXES:
            routes.route(method, prefix + suffix)(handler)
        return fn
    return wrap


def _forwarding(fn, method: str, suffix: str):
    move = method == "POST" and suffix == "/{name}"

    @functools.wraps(fn)
    async def handler(request: web.Request):
        address = await remote_address(request, skip_target=move)
        if address:
            return await proxy(request, address)
        return await fn(request)
    return handler


async def remote_address(request: web.Request, *, skip_target: bool = False) -> str | None:
    """The address of the member holding the instance the URL names when that is another member
    (and the request is to be forwarded there); None to answer here."""
    d = daemon(request)
    if not d.cluster.clustered or forwarded(request):
        return None
    if skip_target and request.query.get("target"):
        return None   # a move across members: the move handler decides where it runs
    proj = await project(request)
    async with d.db.session() as tx:
        member = await ql.instance_member(tx, proj, request.match_info["name"])
    if member is None or member["id"] == d.cluster.member_id:
        return None   # not found (answered here: 404) or ours
    return member["address"]


def instances(request):
    return daemon(request).instances


async def load(request):
    """The Loaded record of the instance the URL names (404 when there is none)."""
    proj = await project(request)
    return await instances(request).load(proj, request.match_info["name"])


async def load_instance(request):
    """The Instance object of the instance the URL names."""
    return instances(request).instance(await load(request))
