"""Calls to several members at once.

Telling every other member to do its part of a cluster-wide change (LXD's cluster.NewNotifier
with NotifyAll): one cluster notification per member, all at once, each member's answer kept.
Unlike `Cluster.notify_all` an offline member is not skipped: it is a member that did not do
its part.

Asking several members the same question at once (instance and operation listings): one request
per member, in parallel, over the cluster TLS. A member that cannot be reached, or does not answer
in time, gives its error in place of an answer; it is never waited on for long.

Timeouts: a member must take the connection (TCP and the TLS handshake) within CONNECT_TIMEOUT (a
killed or frozen member fails here at once), and answer within ANSWER_TIMEOUT (time for a member
with many instances to read their states)."""
from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

from corral.cluster.peer import PeerError

log = logging.getLogger(__name__)
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


CONNECT_TIMEOUT = 1.0
ANSWER_TIMEOUT = 5.0


class MemberError(Exception):
    """A member's failure to answer (its name and why)."""

    def __init__(self, member: str, reason: str):
        super().__init__(f"{member}: {reason}")
        self.member = member
        self.reason = reason


async def ask(peer, member: dict, path: str, headers: dict | None = None, *, method: str = "GET",
              body=None, connect_timeout: float = CONNECT_TIMEOUT, answer_timeout: float | None = ANSWER_TIMEOUT):
    """The metadata of `method path` (a JSON `body`) answered by `member` (a `nodes` row: name,
    address); MemberError when it fails, errs, or is too slow."""
    timeout = aiohttp.ClientTimeout(total=answer_timeout, sock_connect=connect_timeout)
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body)
        hdrs["Content-Type"] = "application/json"
    try:
        async with peer.session().request(method, f"https://{member['address']}{path}", headers=hdrs, data=data,
                                          timeout=timeout) as resp:
            text = await resp.text()
    except asyncio.TimeoutError:
        raise MemberError(member["name"], "timed out") from None
    except (aiohttp.ClientError, OSError) as e:
        raise MemberError(member["name"], str(e) or type(e).__name__) from None
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        raise MemberError(member["name"], f"HTTP {resp.status}: not JSON") from None
    if resp.status >= 400 or not isinstance(doc, dict) or doc.get("type") == "error":
        raise MemberError(member["name"], (doc.get("error") if isinstance(doc, dict) else "") or f"HTTP {resp.status}")
    return doc.get("metadata")


async def ask_all(peer, members: list[dict], path: str, headers: dict | None = None, **kw) -> dict:
    """{member name: its metadata, or the MemberError} of `GET path` on every member, in parallel."""
    async def one(m):
        try:
            return m["name"], await ask(peer, m, path, headers, **kw)
        except MemberError as e:
            log.info("cluster member %s did not answer %s: %s", m["name"], path, e.reason)
            return m["name"], e
    return dict(await asyncio.gather(*(one(m) for m in members)))
