"""/1.0/networks: managed networks (CRUD, rename, state, leases) and host interfaces as unmanaged.
In a cluster a network is created per member then globally and deleted on every member
(corral/network/cluster_networks.py); `?target=MEMBER` on a GET, PUT, PATCH, state or leases is
answered by that member, as LXD forwards it."""
from aiohttp import web

from corral.api import decode, response
from corral.api.auth import allowed_projects, visible_used_by
from corral.api.request import check_etag, daemon, project, recursion, requestor
from corral.api.member_target import notification, target, to_target
from corral.apitypes import NetworkPost, NetworkPut, NetworksPost
from corral.errors import NotFound
from corral.network import cluster_networks
from corral.network.networks import url

routes = web.RouteTableDef()


async def _render(request: web.Request, nets, name: str) -> dict:
    out = await nets.render(name, member_view=bool(target(request)))
    out["used_by"] = visible_used_by(request, out["used_by"])
    return out


@routes.get("/1.0/networks")
async def list_networks(request: web.Request):
    await project(request, "networks")   # ?project= must exist; without features.networks: default's
    nets = daemon(request).networks
    names = await nets.list_names()
    if recursion(request):
        out = []
        for n in names:
            try:
                out.append(await _render(request, nets, n))
            except NotFound:  # a host interface that went away between listing and rendering
                continue
        return response.sync(out)
    return response.sync([url(n) for n in names])


@routes.post("/1.0/networks")
async def create_network(request: web.Request):
    d = daemon(request)
    name = await cluster_networks.create(d, await decode.read(request, NetworksPost), target(request),
                                         requestor(request), notification=notification(request))
    return response.created(url(name))


@routes.get("/1.0/networks/{name}")
async def get_network(request: web.Request):
    remote = await to_target(request)
    if remote is not None:
        return remote
    await project(request, "networks")
    nets = daemon(request).networks
    out = await _render(request, nets, request.match_info["name"])
    return response.sync(out, etag=nets.etag_of(out))


async def _update(request: web.Request, replace: bool):
    remote = await to_target(request)
    if remote is not None:
        return remote
    d = daemon(request)
    await cluster_networks.update(d, request.match_info["name"], await decode.read(request, NetworkPut),
                                  replace=replace, target=target(request), requestor=requestor(request),
                                  notification=notification(request),
                                  etag_check=lambda cur: check_etag(request, cur))
    return response.empty()


@routes.put("/1.0/networks/{name}")
async def put_network(request: web.Request):
    return await _update(request, True)


@routes.patch("/1.0/networks/{name}")
async def patch_network(request: web.Request):
    return await _update(request, False)


@routes.post("/1.0/networks/{name}")
async def rename_network(request: web.Request):
    req = await decode.read(request, NetworkPost)
    await cluster_networks.rename(daemon(request), request.match_info["name"], req.name, requestor(request))
    return response.created(url(req.name))


@routes.delete("/1.0/networks/{name}")
async def delete_network(request: web.Request):
    await cluster_networks.delete(daemon(request), request.match_info["name"], requestor(request),
                                  notification=notification(request))
    return response.empty()


@routes.get("/1.0/networks/{name}/state")
async def network_state(request: web.Request):
    remote = await to_target(request)
    if remote is not None:
        return remote
    return response.sync(await daemon(request).networks.state(request.match_info["name"]))


@routes.get("/1.0/networks/{name}/leases")
async def network_leases(request: web.Request):
    remote = await to_target(request)
    if remote is not None:
        return remote
    return response.sync(await daemon(request).networks.leases(request.match_info["name"],
                                                               allowed_projects(request)))
