"""The route table of /1.0/instances (and its older alias /1.0/containers), shared by the modules
that serve it: instances.py (the collection, one instance, state, exec, logs, console),
instance_snapshots.py (snapshots, backups), instance_files.py (files, metadata, templates)."""
from __future__ import annotations

from aiohttp import web

from corral.api.request import daemon, project

routes = web.RouteTableDef()
PREFIXES = ("/1.0/instances", "/1.0/containers")


def route(method: str, suffix: str = ""):
    """Register a handler under /1.0/instances and /1.0/containers."""
    def wrap(fn):
        for prefix in PREFIXES:
            routes.route(method, prefix + suffix)(fn)
        return fn
    return wrap


def instances(request):
    return daemon(request).instances


async def load(request):
    """The Loaded record of the instance the URL names (404 when there is none)."""
    proj = await project(request)
    return await instances(request).load(proj, request.match_info["name"])


async def load_instance(request):
    """The Instance object of the instance the URL names."""
    return instances(request).instance(await load(request))
