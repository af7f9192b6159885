"""`?target=MEMBER` on cluster-wide objects (storage pools, networks): the named member answers
(LXD's forwardedResponseIfTargetIsRemote), and cluster notifications (another member asking this
one for its part of a change, LXD's ClientTypeNotifier)."""
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
