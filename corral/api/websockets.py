"""LXD's websocket transport for operations (exec, console): one secret per stream, the connect
handler behind /1.0/operations/<id>/websocket?secret=, control messages, and mirroring a file
descriptor to a websocket and back.

A stream set lists its streams ("0", "1", "2", "control"); the operation's work waits until the
data streams are connected ("control" is optional: pylxd never opens it, as with LXD), and every
socket is held open until the work says it is finished.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from typing import AsyncIterator

from aiohttp import WSMsgType, web

from corral.errors import BadRequest, Forbidden
from corral.fdio import write_all

CONNECT_TIMEOUT = 10


class StreamSet:
    def __init__(self, streams: list[str], *, reconnect: bool = True):
        self.secrets = {s: secrets.token_hex(32) for s in streams}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self._reconnect = reconnect
        self._connected = asyncio.Event()
        self.finished = asyncio.Event()

    def fds(self) -> dict[str, str]:
        """The operation metadata's "fds": stream -> secret."""
        return dict(self.secrets)

    async def connect(self, op, request: web.Request, secret: str,
                      on_control=None) -> web.WebSocketResponse:
        """The websocket handler for one stream (the operation's `connect`). With `on_control`, the
        control stream's messages go to it while the socket is open."""
        stream = next((s for s, v in self.secrets.items() if secrets.compare_digest(v, secret)), None)
        if stream is None:
            raise Forbidden("Invalid websocket secret")
        if not self._reconnect and stream in self.sockets:
            raise BadRequest("This websocket is already connected")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.sockets[stream] = ws
        if all(s in self.sockets for s in self.secrets if s != "control"):
            self._connected.set()
        if stream == "control" and on_control is not None:
            await on_control(ws)
        await self.finished.wait()
        with contextlib.suppress(Exception):
            await ws.close()
        return ws

    async def wait_connected(self, timeout: float = CONNECT_TIMEOUT) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise BadRequest("Timed out waiting for websockets to connect") from None

    async def close_all(self) -> None:
        for ws in self.sockets.values():
            with contextlib.suppress(Exception):
                await ws.close()


async def control_messages(ws: web.WebSocketResponse) -> AsyncIterator[dict]:
    """The JSON objects sent on a control socket, until it closes (anything else is skipped)."""
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        try:
            data = json.loads(msg.data)
        except ValueError:
            continue
        if isinstance(data, dict):
            yield data


def window_size(data: dict) -> tuple[int, int] | None:
    """(width, height) of a window-resize control message, or None when it is not one (or bad)."""
    if data.get("command") != "window-resize":
        return None
    args = data.get("args") or {}
    try:
        return int(args.get("width", 80)), int(args.get("height", 24))
    except (ValueError, TypeError, AttributeError):
        return None


async def pump_fd_to_ws(fd: int, ws: web.WebSocketResponse, eof_marker: bool) -> None:
    """Copy what `fd` yields to the websocket until EOF; then LXD's empty-message EOF marker."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:   # EIO on a pty once the other side is gone
                data = b""
            if not data:
                break
            await ws.send_bytes(data)
    finally:
        loop.remove_reader(fd)
        if eof_marker:
            with contextlib.suppress(Exception):
                await ws.send_str("")


async def pump_ws_to_fd(ws: web.WebSocketResponse, fd: int) -> None:
    """Copy websocket messages into `fd` until an empty message or the socket closes."""
    try:
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                break
            data = msg.data.encode() if isinstance(msg.data, str) else msg.data
            if not data:
                break
            await asyncio.to_thread(write_all, fd, data)
    except OSError:
        pass
