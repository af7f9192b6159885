"""Member-to-member endpoints (LXD's /internal/database and /internal/cluster/*): the dqlite stream,
heartbeats, accepting a joining member, role changes. Only other members (the cluster certificate)
reach them, except `accept`, which the joining server calls with its token or the trust password."""
from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from corral.api import response
from corral.api.auth import is_unix
from corral.api.request import daemon, read_object
from corral.cluster import transport
from corral.errors import BadRequest, Forbidden

routes = web.RouteTableDef()


def _peer_only(request: web.Request) -> None:
    if not request.get("cluster_peer"):
        raise Forbidden("not authorized: only cluster members may call this")


class _Feed:
    """aiohttp's payload parser slot for an upgraded connection: the bytes go to a stream reader."""

    def __init__(self, reader: asyncio.StreamReader):
        self.reader = reader

    def feed_data(self, data: bytes):
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class _Upgraded(web.StreamResponse):
    _length_check = False   # a raw stream after the headers, no chunked encoding


@routes.get("/internal/database")
async def database_stream(request: web.Request):
    """`Upgrade: dqlite`: splice this connection to our dqlite node (raft or SQL of another member)."""
    _peer_only(request)
    d = daemon(request)
    if request.headers.get("Upgrade", "").lower() != transport.UPGRADE:
        raise BadRequest("Missing or invalid upgrade header")
    if not d.cluster.clustered or d.db.node is None:
        return response.error(503, "Database node not running")
    l_reader, l_writer = await d.cluster.gateway.open_local()
    resp = _Upgraded(status=101, headers={"Upgrade": transport.UPGRADE, "Connection": "Upgrade"})
    resp.force_close()
    try:
        await resp.prepare(request)
    except ConnectionError:   # the caller went away before the upgrade
        l_writer.close()
        return resp
    reader = asyncio.StreamReader(limit=1 << 20)
    request.protocol.set_parser(_Feed(reader))
    request.protocol.keep_alive(False)
    tr = request.transport
    d.cluster.streams.add(tr)

    def close_remote():
        if tr is not None:
            tr.close()

    def close_local():
        with contextlib.suppress(Exception):
            l_writer.write_eof()

    async def sink_local(data: bytes):
        l_writer.write(data)
        await l_writer.drain()

    try:
        await asyncio.gather(transport.pump(reader, sink_local, close_local),
                             transport.pump(l_reader, resp.write, close_remote))
    finally:
        l_writer.close()
        d.cluster.streams.discard(tr)
    return resp


@routes.put("/internal/database")
async def heartbeat(request: web.Request):
    _peer_only(request)
    d = daemon(request)
    if d.cluster.heartbeat is None or d.cluster.leaving:
        return response.error(503, "This member is not ready for heartbeats")
    try:
        await d.cluster.heartbeat.receive(await read_object(request))
    except ValueError as e:
        raise BadRequest(str(e)) from None
    return response.empty()


@routes.post("/internal/cluster/accept")
async def accept(request: web.Request):
    """The joining server's request (authenticated by its token secret or the trust password)."""
    d = daemon(request)
    return response.sync(await d.cluster.accept(await read_object(request)))


@routes.post("/internal/cluster/accept-member")
async def accept_member(request: web.Request):
    """Forwarded by the member that checked the joiner's secret, to the leader."""
    _peer_only(request)
    return response.sync(await daemon(request).cluster.accept(await read_object(request), validated=True))


@routes.post("/internal/cluster/redeem")
async def redeem(request: web.Request):
    """Another member checks a joiner's token: ours if we made it (consumed: single use)."""
    _peer_only(request)
    from corral.cluster.join import redeem_local
    body = await read_object(request)
    if not redeem_local(daemon(request).cluster, str(body.get("name") or ""), str(body.get("secret") or "")):
        raise Forbidden("No such join token")
    return response.empty()


@routes.post("/internal/cluster/db-pause")
async def db_pause(request: web.Request):
    """The leader is about to hand leadership over: finish what runs, start nothing new (3 s at most)."""
    _peer_only(request)
    await daemon(request).db.pause()
    return response.empty()


@routes.post("/internal/cluster/db-resume")
async def db_resume(request: web.Request):
    _peer_only(request)
    daemon(request).db.resume()
    return response.empty()


@routes.post("/internal/cluster/rebalance")
async def rebalance(request: web.Request):
    _peer_only(request)
    plan = await daemon(request).cluster.rebalance()
    return response.sync([list(p) for p in plan])


@routes.post("/internal/cluster/handover")
async def handover(request: web.Request):
    _peer_only(request)
    body = await read_object(request)
    plan = await daemon(request).cluster.handover_plan(int(body.get("id") or 0))
    return response.sync([list(p) for p in plan])


@routes.post("/internal/cluster/remove")
async def remove(request: web.Request):
    _peer_only(request)
    body = await read_object(request)
    await daemon(request).cluster.remove_member(str(body.get("name") or ""), bool(body.get("force")))
    return response.empty()


@routes.post("/internal/cluster/reset")
async def reset(request: web.Request):
    _peer_only(request)
    asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(daemon(request).cluster.reset()))
    return response.empty()


@routes.post("/internal/cluster/refresh")
async def refresh(request: web.Request):
    """Another member changed cluster-wide configuration: reload ours."""
    _peer_only(request)
    body = await read_object(request)
    tables = body.get("tables") if isinstance(body.get("tables"), list) else []
    await daemon(request).cluster.refresh([str(t) for t in tables])
    return response.empty()


@routes.delete("/internal/cluster/raft-node/{address}")
async def remove_raft_node(request: web.Request):
    """`corrald cluster remove-raft-node ADDRESS` (unix socket): drop a raft node left behind."""
    if not is_unix(request):
        raise Forbidden("Internal endpoints are only available on the unix socket")
    from corral.cluster import recovery
    c = daemon(request).cluster

    async def raft_nodes():
        return [(n.id, n.address) for n in await c.gateway.members()]

    try:
        await recovery.remove_raft_node(request.match_info["address"], is_leader=c.is_leader,
                                        raft_nodes=raft_nodes, remove=c.gateway.remove)
    except recovery.RecoveryError as e:
        return response.error(500, str(e))
    with contextlib.suppress(Exception):
        await c.rebalance()
    return response.empty()


@routes.get("/internal/testing/heartbeat")
async def heartbeat_counters(request: web.Request):
    if not is_unix(request):
        raise Forbidden("Internal endpoints are only available on the unix socket")
    hb = daemon(request).cluster.heartbeat
    if hb is None:
        return response.sync({"rounds": 0, "sent": 0, "received": 0, "running": False, "held": False})
    return response.sync({"rounds": hb.rounds, "sent": hb.sent, "received": hb.received, "running": True,
                          "held": bool(hb.holding),
                          "round_ms": None if hb.last_round is None else round(hb.last_round * 1000, 1)})


@routes.post("/internal/testing/heartbeat")
async def heartbeat_hold(request: web.Request):
    """{"hold": bool}: a leader round blocks after taking its member list, before sending (tests)."""
    if not is_unix(request):
        raise Forbidden("Internal endpoints are only available on the unix socket")
    body = await read_object(request)
    hb = daemon(request).cluster.heartbeat
    if hb is None:
        raise BadRequest("This member runs no heartbeat (not clustered)")
    hb.hold(bool(body.get("hold")))
    return response.empty()
