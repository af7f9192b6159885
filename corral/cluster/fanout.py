"""Telling every other member to do its part of a cluster-wide change (LXD's cluster.NewNotifier
with NotifyAll): one cluster notification per member, all at once, each member's answer kept.
Unlike `Cluster.notify_all` an offline member is not skipped: it is a member that did not do
its part."""
from __future__ import annotations

import asyncio

from corral.cluster.peer import PeerError

OFFLINE = "Cluster member is offline"


async def others(cluster) -> list[dict]:
    """Every other member (online or not)."""
    if not cluster.clustered:
        return []
    return [m for m in await cluster.members() if m["id"] != cluster.member_id]


async def offline(cluster) -> list[str]:
    """Names of the other members that are offline now."""
    return [m["name"] for m in await others(cluster) if not cluster.online(m)]


async def each(cluster, method: str, path: str, body_for, timeout: float = 120.0) -> dict[str, str | None]:
    """Call `method path` on every other member as a cluster notification, with `body_for(name)`
    as its body; {member name: None when it succeeded, else its error}."""
    async def one(m: dict) -> tuple[str, str | None]:
        if not cluster.online(m):
            return m["name"], OFFLINE
        try:
            status, doc = await cluster.peer.request(m["address"], method, path, body_for(m["name"]),
                                                     timeout=timeout, notify=True)
        except PeerError as e:
            return m["name"], str(e)
        if status >= 400 or doc.get("type") == "error":
            return m["name"], doc.get("error") or f"HTTP {status}"
        return m["name"], None
    return dict(await asyncio.gather(*(one(m) for m in await others(cluster))))
