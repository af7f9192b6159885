"""Forwarding a client's request to the cluster member that holds what it is about, as LXD's
ForwardedResponse does: the same method, path, query, headers and body, over the cluster TLS (the
member sees another member, so trusts it); the member's answer goes back as it came, streamed.
Websocket upgrades (exec, console, events) are relayed both ways until either side closes."""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web

from corral.api.request import JSON_BODY
from corral.errors import CorralError

log = logging.getLogger(__name__)

FORWARDED = "X-Corral-Forwarded"   # set on forwarded requests: the receiver never forwards them again
_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
        "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-accept",
        "sec-websocket-protocol", "proxy-connection", "te", "trailer"}
CHUNK = 1 << 16


class MemberUnreachable(CorralError):
    status = 503


def forwarded(request: web.Request) -> bool:
    """Whether this request was forwarded here by another member (so it is answered here)."""
    return bool(request.get("cluster_peer")) and request.headers.get(FORWARDED) == "1"


def _headers(src) -> dict:
    out = {k: v for k, v in src.items() if k.lower() not in _HOP}
    out[FORWARDED] = "1"
    return out


async def proxy(request: web.Request, address: str, path_qs: str | None = None) -> web.StreamResponse:
    """Answer `request` with what the member at `address` ("ip:port") answers to it."""
    cluster = request.app["daemon"].cluster
    session = cluster.peer.session()
    url = f"https://{address}{path_qs or request.path_qs}"
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await _relay_websocket(request, session, url)
    body = request.get(JSON_BODY)
    data = body if body is not None else (request.content if request.body_exists else None)
    headers = _headers(request.headers)
    if body is not None and not any(k.lower() == "content-type" for k in headers):
        # a JSON body sent without a Content-Type: say so, or aiohttp calls it application/octet-stream
        # (which the member would take for an upload: a backup import, an image file)
        headers["Content-Type"] = "application/json"
    try:
        resp = await session.request(request.method, url, headers=headers, data=data,
                                     timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                                     allow_redirects=False, auto_decompress=False)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
        raise MemberUnreachable(f"Failed to forward the request to cluster member {address}: "
                                f"{e or type(e).__name__}") from None
    try:
        out = web.StreamResponse(status=resp.status, reason=resp.reason)
        for k, v in resp.headers.items():
            if k.lower() not in _HOP:
                out.headers.add(k, v)
        if resp.headers.get("Content-Length") is not None:
            out.content_length = int(resp.headers["Content-Length"])
        await out.prepare(request)
        async for chunk in resp.content.iter_chunked(CHUNK):
            await out.write(chunk)
        await out.write_eof()
        return out
    finally:
        resp.release()


async def _relay_websocket(request: web.Request, session: aiohttp.ClientSession, url: str):
    headers = {k: v for k, v in _headers(request.headers).items()
               if k.lower() not in ("cookie", "origin")}
    try:
        upstream = await session.ws_connect(url, headers=headers, autoping=False, max_msg_size=0,
                                            timeout=aiohttp.ClientWSTimeout(ws_close=5))
    except aiohttp.WSServerHandshakeError as e:
        raise CorralError(e.message or "websocket refused by the member", e.status) from None
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
        raise MemberUnreachable(f"Failed to forward the websocket to the member: {e or type(e).__name__}") from None
    ws = web.WebSocketResponse(autoping=False, max_msg_size=0)
    await ws.prepare(request)

    async def pump(src, dst):
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.PING:
                await dst.ping(msg.data)
            elif msg.type == aiohttp.WSMsgType.PONG:
                await dst.pong(msg.data)
            else:
                break
        await dst.close()

    tasks = [asyncio.ensure_future(pump(upstream, ws)), asyncio.ensure_future(pump(ws, upstream))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # the other side drains what is still in flight, then closes
        await asyncio.wait(tasks, timeout=5)
    finally:
        for t in tasks:
            t.cancel()
        await upstream.close()
        await ws.close()
    return ws
