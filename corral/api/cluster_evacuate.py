"""POST /1.0/cluster/members/NAME/state: evacuate or restore a member (`lxc cluster evacuate|restore
NAME`), an operation run from the member that got the request (corral/cluster/evacuate.py)."""
from __future__ import annotations

from aiohttp import web

from corral.api import decode, response
from corral.api.request import daemon
from corral.apitypes import ClusterMemberStatePost
from corral.cluster import evacuate, members
from corral.errors import BadRequest, NotFound

routes = web.RouteTableDef()


@routes.post("/1.0/cluster/members/{name}/state")
async def member_state(request: web.Request):
    d, name = daemon(request), request.match_info["name"]
    if not d.cluster.clustered:
        raise NotFound(members.NOT_FOUND)   # LXD 5.0.2: a standalone server has no such member
    await members.get(d.state, name)
    req: ClusterMemberStatePost = await decode.read(request, ClusterMemberStatePost)
    if req.action == "evacuate":
        return response.operation(request, await evacuate.evacuate_work(d.state, name))
    if req.action == "restore":
        return response.operation(request, await evacuate.restore_work(d.state, name))
    raise BadRequest(f'Unknown action "{req.action}"')
