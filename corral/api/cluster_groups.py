"""/1.0/cluster/groups[/NAME]: LXD 5.0's cluster groups (`lxc cluster group create/assign/list/show/
edit/rename/delete/remove`; assign and remove edit the member's `groups`, corral/api/cluster.py).
The work and the checks are corral/cluster/groups.py's; a standalone server is not clustered."""
from __future__ import annotations

from aiohttp import web

from corral.api import decode, response
from corral.api.request import check_etag, daemon, recursion, requestor
from corral.apitypes import ClusterGroupPost, ClusterGroupPut, ClusterGroupsPost
from corral.cluster import groups
from corral.errors import BadRequest

routes = web.RouteTableDef()


def _require_clustered(request: web.Request) -> None:
    c = getattr(daemon(request), "cluster", None)
    if c is None or not c.clustered:
        raise BadRequest("This server is not clustered")


def _event(request: web.Request, action: str, name: str, context: dict | None = None) -> None:
    daemon(request).events.lifecycle(f"cluster-group-{action}", groups.url(name), context=context,
                                     requestor=requestor(request))


@routes.get("/1.0/cluster/groups")
async def list_groups(request: web.Request):
    _require_clustered(request)
    state = daemon(request).state
    if recursion(request):
        return response.sync(await groups.get_all(state))
    return response.sync([groups.url(n) for n in await groups.names(state)])


@routes.post("/1.0/cluster/groups")
async def create_group(request: web.Request):
    _require_clustered(request)
    req: ClusterGroupsPost = await decode.read(request, ClusterGroupsPost)
    await groups.create(daemon(request).state, req.name, req.description, req.members)
    _event(request, "created", req.name)
    return response.created(groups.url(req.name))


@routes.get("/1.0/cluster/groups/{name}")
async def get_group(request: web.Request):
    _require_clustered(request)
    g = await groups.get(daemon(request).state, request.match_info["name"])
    return response.sync(g, etag=groups.writable(g))


async def _update(request: web.Request, patch: bool):
    _require_clustered(request)
    state, name = daemon(request).state, request.match_info["name"]
    cur = await groups.get(state, name)
    check_etag(request, groups.writable(cur))
    req: ClusterGroupPut = await decode.read(request, ClusterGroupPut)
    description = req.description if not patch or req.given("description") else cur["description"]
    members = req.members if not patch or req.given("members") else cur["members"]
    await groups.update(state, name, description, members)
    _event(request, "updated", name, {"description": description, "members": members})
    return response.empty()


@routes.put("/1.0/cluster/groups/{name}")
async def put_group(request: web.Request):
    return await _update(request, patch=False)


@routes.patch("/1.0/cluster/groups/{name}")
async def patch_group(request: web.Request):
    return await _update(request, patch=True)


@routes.post("/1.0/cluster/groups/{name}")
async def rename_group(request: web.Request):
    old = request.match_info["name"]
    _require_clustered(request)
    req: ClusterGroupPost = await decode.read(request, ClusterGroupPost)
    await groups.rename(daemon(request).state, old, req.name)
    _event(request, "renamed", req.name, {"old_name": old})
    return response.created(groups.url(req.name))


@routes.delete("/1.0/cluster/groups/{name}")
async def delete_group(request: web.Request):
    _require_clustered(request)
    name = request.match_info["name"]
    await groups.delete(daemon(request).state, name)
    _event(request, "deleted", name)
    return response.empty()
