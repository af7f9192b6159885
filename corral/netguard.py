"""Connection limits for every listener (HTTPS API, unix socket, /dev/lxd).

An unauthenticated client must not be able to take the daemon down by opening connections and
sending nothing (or one header byte a second). So corrald accepts sockets itself instead of letting
asyncio's create_server do it:

- a cap on concurrent connections per peer (IP address, or IPv6 /64, for TCP; the uid from
  SO_PEERCRED on the unix socket, where root is not capped; the container on /dev/lxd) and in total
  per listener, the totals derived from RLIMIT_NOFILE with headroom left for the daemon's own files;
  a connection over a cap is accepted and closed at once (no handshake, no per-connection log line);
- a TLS handshake timeout, a header timeout (from accept, or from the first byte of the next request
  on a keep-alive connection, to a complete request header) and an idle timeout between requests.
  Nothing else is timed: a request being handled (events and exec websockets, operation waits,
  uploads and downloads) keeps its connection as long as it runs;
- when accept() fails for lack of file descriptors the listener pauses briefly instead of spinning.

The timeouts and caps can be overridden for tests with environment variables read at start
(see docs/production.md): CORRAL_HEADER_TIMEOUT, CORRAL_IDLE_TIMEOUT, CORRAL_HANDSHAKE_TIMEOUT,
CORRAL_MAX_CONNECTIONS (total per listener), CORRAL_MAX_CONNECTIONS_PER_PEER.
"""
from __future__ import annotations

import asyncio
import collections
import errno
import ipaddress
import logging
import os
import resource
import socket
import struct
from dataclasses import dataclass
from typing import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
HANDSHAKE_TIMEOUT = 10.0
PER_PEER = {"https": 256, "unix": 256, "devlxd": 64}
# Share of the file descriptors left after the reserve that each listener may use.
SHARE = {"https": 2, "unix": 1, "devlxd": 1}
BACKLOG = 1024
ACCEPT_BATCH = 64
ACCEPT_PAUSE = 0.5
_NO_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def _env(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        log.warning("ignoring invalid %s=%r", name, raw)
        return default


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as LXD does); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        with open("/proc/sys/fs/nr_open") as f:
            hard = int(f.read())
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    except (ValueError, OSError):
        return soft


def fd_budget(nofile: int) -> dict[str, int]:
    """Total connections per listener: a quarter of the limit (at least 512) stays for the daemon's own
    files (database, containers' consoles and pipes, logs, images); the rest is split between listeners."""
    reserve = max(512, nofile // 4)
    avail = max(nofile - reserve, 64)
    shares = sum(SHARE.values())
    return {kind: max(16, avail * share // shares) for kind, share in SHARE.items()}


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    idle_timeout: float
    handshake_timeout: float
    per_peer: int    # 0: no cap per peer
    total: int

    @classmethod
    def for_listener(cls, kind: str) -> "Limits":
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return cls(header_timeout=_env("CORRAL_HEADER_TIMEOUT", HEADER_TIMEOUT),
                   idle_timeout=_env("CORRAL_IDLE_TIMEOUT", IDLE_TIMEOUT),
                   handshake_timeout=_env("CORRAL_HANDSHAKE_TIMEOUT", HANDSHAKE_TIMEOUT),
                   per_peer=int(_env("CORRAL_MAX_CONNECTIONS_PER_PEER", PER_PEER[kind])),
                   total=int(_env("CORRAL_MAX_CONNECTIONS", fd_budget(nofile)[kind])))


# ---- who is the peer ------------------------------------------------------------------------

def tcp_peer(sock: socket.socket, addr) -> str | None:
    ip = ipaddress.ip_address(addr[0].split("%")[0])
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))   # one host has a whole /64
    return str(ip)


def peer_cred(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of a unix socket's peer, from the kernel."""
    return struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))


def unix_peer(sock: socket.socket, _addr) -> str | None:
    """The peer's uid; root is not capped per peer on the daemon's own socket (it owns the host anyway)."""
    uid = peer_cred(sock)[1]
    return None if uid == 0 else f"uid:{uid}"


# ---- accounting -----------------------------------------------------------------------------

class Guard:
    """Counts one listener's connections, in total and per peer."""

    def __init__(self, kind: str, limits: Limits, peer_key: Callable):
        self.kind = kind
        self.limits = limits
        self.peer_key = peer_key
        self.count = 0
        self.per_peer: collections.Counter = collections.Counter()
        self.refused = 0
        self.timed_out = 0

    def admit(self, key: str | None) -> bool:
        lim = self.limits
        if self.count >= lim.total:
            self.refused += 1
            log.warning("%s: %d connections open, the most allowed; refusing new ones", self.kind, self.count)
            return False
        if key is not None and lim.per_peer and self.per_peer[key] >= lim.per_peer:
            self.refused += 1
            log.warning("%s: %s has %d connections open, the most allowed per peer; refusing new ones",
                        self.kind, key, self.per_peer[key])
            return False
        self.count += 1
        if key is not None:
            self.per_peer[key] += 1
        return True

    def release(self, key: str | None) -> None:
        self.count -= 1
        if key is not None:
            self.per_peer[key] -= 1
            if self.per_peer[key] <= 0:
                del self.per_peer[key]


class _Slot:
    """One admitted connection; released exactly once, whichever way it ends."""
    __slots__ = ("guard", "key", "done")

    def __init__(self, guard: Guard, key: str | None):
        self.guard, self.key, self.done = guard, key, False

    def release(self) -> None:
        if not self.done:
            self.done = True
            self.guard.release(self.key)


# ---- the HTTP protocol with a header timeout ------------------------------------------------

class GuardedHandler(RequestHandler):
    """aiohttp's RequestHandler, plus: the connection is aborted when a request header is not complete
    within the header timeout (counted from accept, or from the first byte after an idle keep-alive
    period); aiohttp's own keep-alive timer is the idle timeout. A request being handled is never timed."""

    def __init__(self, slot: _Slot, manager: web.Server, loop, **kwargs):
        kwargs.pop("keepalive_timeout", None)
        super().__init__(manager, loop=loop, keepalive_timeout=slot.guard.limits.idle_timeout, **kwargs)
        self._slot = slot
        self._header_timer: asyncio.TimerHandle | None = None

    def _waiting(self) -> bool:
        """Between requests: nothing parsed yet, the handler loop waits for the next message."""
        return self._waiter is not None and not self._waiter.done() and not self._messages

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(self._slot.guard.limits.header_timeout, self._header_expired)

    def _header_expired(self) -> None:
        self._header_timer = None
        if self._waiting() and self.transport is not None:
            self._slot.guard.timed_out += 1
            self.transport.abort()   # no TLS close_notify exchange with a client that may never read
            self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if (self._header_timer is None and self._payload_parser is None and not self._upgraded
                and self._waiting()):
            self._arm_header_timer()    # the first byte of a request after an idle keep-alive period
        super().data_received(data)
        if self._header_timer is not None and not self._waiting():
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._slot.release()
        super().connection_lost(exc)


# ---- accepting ------------------------------------------------------------------------------

class GuardedServer:
    """Accepts on listening sockets, refuses over the caps, hands the rest to aiohttp."""

    def __init__(self, socks: list[socket.socket], server: web.Server, guard: Guard, ssl_context=None):
        self._socks = socks
        self._server = server
        self.guard = guard
        self._ssl = ssl_context
        self._loop = asyncio.get_running_loop()
        self._pending: set[asyncio.Task] = set()
        self._paused: asyncio.TimerHandle | None = None
        self._closed = False

    def start(self) -> None:
        for s in self._socks:
            s.setblocking(False)
            self._loop.add_reader(s.fileno(), self._accept, s)

    def _pause(self) -> None:
        for s in self._socks:
            self._loop.remove_reader(s.fileno())
        self._paused = self._loop.call_later(ACCEPT_PAUSE, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if not self._closed:
            self.start()

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _NO_RESOURCES:
                    log.error("%s: cannot accept connections (%s); pausing for %.1fs",
                              self.guard.kind, e.strerror, ACCEPT_PAUSE)
                    if self._paused is None:
                        self._pause()
                    return
                if e.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue
                log.error("%s: accept failed: %s", self.guard.kind, e)
                return
            try:
                key = self.guard.peer_key(conn, addr)
            except Exception:
                key = "unknown"
            if not self.guard.admit(key):
                if conn.family != socket.AF_UNIX:   # a reset: no TIME_WAIT, no FIN handshake
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            self._serve(conn, _Slot(self.guard, key))

    def _serve(self, conn: socket.socket, slot: _Slot) -> None:
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._connect(conn, slot))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _connect(self, conn: socket.socket, slot: _Slot) -> None:
        server = self._server

        def factory():
            return GuardedHandler(slot, server, loop=self._loop, **server._kwargs)

        try:
            await self._loop.connect_accepted_socket(
                factory, conn, ssl=self._ssl,
                ssl_handshake_timeout=self.guard.limits.handshake_timeout if self._ssl else None)
        except BaseException:   # handshake failed or timed out: the transport closed the socket
            slot.release()
            if conn.fileno() != -1 and self._ssl is None:
                conn.close()

    def close(self) -> None:
        self._closed = True
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        for s in self._socks:
            self._loop.remove_reader(s.fileno())
            s.close()
        for task in list(self._pending):
            task.cancel()

    async def wait_closed(self) -> None:
        return None


class GuardedSite(web.BaseSite):
    """An aiohttp site on already bound sockets, served by a GuardedServer."""

    def __init__(self, runner: web.BaseRunner, socks: list[socket.socket], guard: Guard, name: str,
                 ssl_context=None):
        super().__init__(runner, ssl_context=ssl_context)
        self._socks = socks
        self._guard = guard
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def guard(self) -> Guard:
        return self._guard

    async def start(self) -> None:
        await super().start()
        server = GuardedServer(self._socks, self._runner.server, self._guard, self._ssl_context)
        server.start()
        self._server = server


def tcp_sockets(host: str | None, port: int) -> list[socket.socket]:
    """Listening sockets for host:port (every address family when host is empty, like create_server)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    try:
        for fam, type_, proto, _, sa in dict.fromkeys(infos):
            s = socket.socket(fam, type_, proto)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(sa)
            s.listen(BACKLOG)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


def unix_socket(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
        s.listen(BACKLOG)
    except OSError:
        s.close()
        raise
    return s


async def serve_unix(runner: web.BaseRunner, path: str, kind: str, peer_key: Callable) -> GuardedSite:
    site = GuardedSite(runner, [unix_socket(path)], Guard(kind, Limits.for_listener(kind), peer_key),
                       f"unix:{path}")
    await site.start()
    return site
