"""`?target=MEMBER` on requests about one member's host (GET /1.0, /1.0/resources), as LXD's
ForwardedResponseIfTargetIsRemote: another member's name forwards the request to it (answered there,
corral/api/forward.py); this member's own name, or no target, answers here; a name no member has is
LXD's 404 "Cluster member not found" (also standalone, whose only member is "none")."""
from __future__ import annotations

from aiohttp import web

from corral.api.forward import forwarded, proxy
from corral.api.request import daemon


async def remote_member(request: web.Request) -> str | None:
    """The cluster address of the member `?target=` names when it is another one; None: answer here."""
    target = request.query.get("target", "")
    if not target or forwarded(request):
        return None
    cluster = daemon(request).cluster
    if target == cluster.server_name:
        return None
    address = await cluster.member_address(target)   # NotFound "Cluster member not found"
    if not address or address == cluster.address:
        return None
    return address


async def forward_to_target(request: web.Request) -> web.StreamResponse | None:
    """The target member's answer to `request`, or None when it is to be answered here."""
    address = await remote_member(request)
    return None if address is None else await proxy(request, address)
