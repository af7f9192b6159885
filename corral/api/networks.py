"""/1.0/networks: managed networks (CRUD, rename, state, leases) and host interfaces as unmanaged."""
from aiohttp import web

from corral.api import decode, response
from corral.api.auth import allowed_projects, visible_used_by
from corral.api.request import check_etag, daemon, project, recursion, requestor
from corral.apitypes import NetworkPost, NetworkPut, NetworksPost
from corral.errors import NotFound
from corral.network.networks import url

routes = web.RouteTableDef()


async def _render(request: web.Request, nets, name: str) -> dict:
    out = await nets.render(name)
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
    name = await d.networks.create(await decode.read(request, NetworksPost), requestor(request))
    return response.created(url(name))


@routes.get("/1.0/networks/{name}")
async def get_network(request: web.Request):
    await project(request, "networks")
    nets = daemon(request).networks
    name = request.match_info["name"]
    return response.sync(await _render(request, nets, name), etag=nets.etag(name))


async def _update(request: web.Request, replace: bool):
    nets = daemon(request).networks
    name = request.match_info["name"]
    await nets.update(name, await decode.read(request, NetworkPut), replace=replace, requestor=requestor(request),
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
    nets = daemon(request).networks
    req = await decode.read(request, NetworkPost)
    await nets.rename(request.match_info["name"], req.name, requestor(request))
    return response.created(url(req.name))


@routes.delete("/1.0/networks/{name}")
async def delete_network(request: web.Request):
    await daemon(request).networks.delete(request.match_info["name"], requestor(request))
    return response.empty()


@routes.get("/1.0/networks/{name}/state")
async def network_state(request: web.Request):
    return response.sync(await daemon(request).networks.state(request.match_info["name"]))


@routes.get("/1.0/networks/{name}/leases")
async def network_leases(request: web.Request):
    return response.sync(await daemon(request).networks.leases(request.match_info["name"],
                                                               allowed_projects(request)))
