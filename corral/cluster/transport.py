"""Raft and dqlite client traffic between members, over the cluster's mutual TLS (as LXD does it).

A member never exposes its dqlite node on the network: the node binds an abstract unix socket.
Another member reaches it by dialing the cluster address over TLS (both sides present the cluster
certificate and pin it) and sending `GET /internal/database` with `Upgrade: dqlite`; after the
`101 Switching Protocols` the connection is a raw byte stream spliced to the local node.

- `dial(address, ctx)`: the client side (asyncio streams), used by the daemon's SQL connection and
  the raft connect function.
- `Connector`: dqlite's connect function (called on a libuv worker thread): dials on the daemon's
  event loop, splices the TLS stream to one end of a socketpair and hands dqlite the other end.
- `splice(reader, writer, bind)`: the accept side (the API handler hands the upgraded stream here).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl

log = logging.getLogger(__name__)

UPGRADE = "dqlite"
DIAL_TIMEOUT = 2.0
_CHUNK = 1 << 16


class TransportError(OSError):
    pass


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def dial(address: str, ctx: ssl.SSLContext, timeout: float = DIAL_TIMEOUT):
    """A raw stream to the dqlite node of the member at `address` ("IP:PORT")."""
    host, port = split(address)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
        try:
            writer.write((f"GET /internal/database HTTP/1.1\r\nHost: {address}\r\n"
                          f"Upgrade: {UPGRADE}\r\nConnection: Upgrade\r\n\r\n").encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except BaseException:
            writer.close()
            raise
    line = head.split(b"\r\n", 1)[0]
    status = line.split()
    if len(status) < 2 or status[1] != b"101":
        writer.close()
        raise TransportError(f"{address} refused the database upgrade: {line.decode(errors='replace')}")
    return reader, writer


async def pump(reader: asyncio.StreamReader, write, close) -> None:
    """Copy `reader` into `write(data)` (an awaitable) until EOF; then `close()`."""
    try:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            await write(data)
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            close()


def _writer_sink(writer: asyncio.StreamWriter):
    async def write(data: bytes) -> None:
        writer.write(data)
        await writer.drain()
    return write


async def splice_streams(a_reader, a_writer, b_reader, b_writer) -> None:
    """Two-way copy between two stream pairs until both directions end."""
    def closer(w):
        def close():
            if w.can_write_eof():
                with contextlib.suppress(Exception):
                    w.write_eof()
                    return
            w.close()
        return close
    await asyncio.gather(pump(a_reader, _writer_sink(b_writer), closer(b_writer)),
                         pump(b_reader, _writer_sink(a_writer), closer(a_writer)))
    for w in (a_writer, b_writer):
        w.close()


async def open_local(bind: str):
    """A stream to this member's own dqlite node (its abstract unix socket "@name")."""
    return await asyncio.open_unix_connection("\0" + bind[1:] if bind.startswith("@") else bind)


class Connector:
    """dqlite's connect function for one node: raft connections to other members go over TLS."""

    def __init__(self, loop: asyncio.AbstractEventLoop, context, tasks: set):
        self.loop = loop
        self.context = context     # () -> ssl.SSLContext (the cluster certificate may rotate)
        self.tasks = tasks         # the splice tasks, cancelled when the gateway stops
        self.closed = False

    async def _open(self, address: str) -> int:
        reader, writer = await dial(address, self.context())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            l_reader, l_writer = await asyncio.open_unix_connection(sock=ours)
        except BaseException:
            ours.close()
            theirs.close()
            writer.close()
            raise
        task = asyncio.ensure_future(splice_streams(reader, writer, l_reader, l_writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return theirs.detach()

    def __call__(self, address: str) -> int:
        """On a dqlite worker thread: a connected fd (dqlite owns it), or raise."""
        if self.closed or self.loop.is_closed():
            raise TransportError("the member is shutting down")
        fut = asyncio.run_coroutine_threadsafe(self._open(address), self.loop)
        try:
            return fut.result(DIAL_TIMEOUT + 1)
        except Exception as e:
            fut.cancel()
            log.debug("raft connection to %s failed: %s", address, e)
            raise
