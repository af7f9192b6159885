"""`?target=MEMBER` on requests about one member: the named member answers (LXD's
ForwardedResponseIfTargetIsRemote, corral/api/forward.py), and cluster notifications (another member
asking this one for its part of a change, LXD's ClientTypeNotifier).

- Cluster-wide objects (storage pools, networks): `to_target`.
- One member's host (GET /1.0, /1.0/resources): `forward_to_target`; another member's name forwards
  the request to it; this member's own name, or no target, answers here; a name no member has is
  LXD's 404 "Cluster member not found" (also standalone, whose only member is "none")."""
from __future__ import annotations

from aiohttp import web

from corral.api.forward import forwarded, proxy
from corral.api.request import daemon
from corral.cluster.peer import NOTIFIER


def notification(request: web.Request) -> bool:
    """A cluster notification: another member asks this one for its part of a change."""
    return bool(request.get("cluster_peer")) and request.headers.get("User-Agent", "") == NOTIFIER


def target(request: web.Request) -> str:
    return request.query.get("target", "")


async def to_target(request: web.Request) -> web.StreamResponse | None:
    """The answer of the member `?target=` names when it is another one; None when this member
    answers (no target, this member, a request forwarded here, a standalone server)."""
    d = daemon(request)
    name = target(request)
    if not name or forwarded(request) or not d.cluster.clustered or name == d.cluster.server_name:
        return None
    return await proxy(request, await d.cluster.member_address(name))


async def remote_member(request: web.Request) -> str | None:
    """The cluster address of the member `?target=` names when it is another one; None: answer here."""
    name = target(request)
    if not name or forwarded(request):
        return None
    cluster = daemon(request).cluster
    if name == cluster.server_name:
        return None
    address = await cluster.member_address(name)   # NotFound "Cluster member not found"
    if not address or address == cluster.address:
        return None
    return address


async def forward_to_target(request: web.Request) -> web.StreamResponse | None:
    """The target member's answer to `request`, or None when it is to be answered here."""
    address = await remote_member(request)
    return None if address is None else await proxy(request, address)
