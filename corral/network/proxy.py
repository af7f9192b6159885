"""Proxy devices: tcp, udp and unix forwarding between the host and an instance, run inside the
daemon's event loop (no process per device).

A socket belongs to the network namespace it was created in, whichever thread uses it later.
So the listening socket is made in the host's namespace (bind=host) or in the instance's
(bind=instance, via a short-lived thread that enters /proc/PID/ns/net), and each connection's
upstream socket is made in the other one; asyncio then drives both ends. Unix socket paths inside
the instance are reached through /proc/PID/root.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from dataclasses import dataclass

from corral.network.netns import run_in_netns

log = logging.getLogger(__name__)

UDP_IDLE_SECONDS = 60.0
BUFSIZE = 65536


class ProxyAddressError(ValueError):
    pass


@dataclass(frozen=True)
class Address:
    proto: str             # tcp, udp, unix
    host: str = ""         # tcp/udp
    ports: tuple[int, ...] = ()
    path: str = ""         # unix (a leading @ is an abstract socket)

    @property
    def family(self) -> int:
        if self.proto == "unix":
            return socket.AF_UNIX
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @property
    def socktype(self) -> int:
        return socket.SOCK_DGRAM if self.proto == "udp" else socket.SOCK_STREAM


def _ports(spec: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ProxyAddressError(f'Invalid port "{part}"') from None
    if not out or any(not 0 < p < 65536 for p in out):
        raise ProxyAddressError(f'Invalid port range "{spec}"')
    return tuple(out)


def parse_address(value: str) -> Address:
    """LXD's proxy addresses: tcp:HOST:PORT[-PORT][,PORT], udp:..., unix:/path, unix:@abstract."""
    proto, sep, rest = value.partition(":")
    if not sep or proto not in ("tcp", "udp", "unix"):
        raise ProxyAddressError(f'Invalid address "{value}": expected tcp:, udp: or unix:')
    if proto == "unix":
        if not rest or not (rest.startswith("/") or rest.startswith("@")):
            raise ProxyAddressError(f'Invalid unix address "{value}": expected an absolute path or @name')
        return Address("unix", path=rest)
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]:")
    else:
        host, _, port = rest.rpartition(":")
    if not host or not port:
        raise ProxyAddressError(f'Invalid address "{value}": expected {proto}:HOST:PORT')
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        raise ProxyAddressError(f'Invalid IP address "{host}" in "{value}"') from None
    return Address(proto, host=host, ports=_ports(port))


def check_pair(listen: Address, connect: Address) -> None:
    if (listen.proto == "udp") != (connect.proto == "udp"):
        raise ProxyAddressError("Proxying between UDP and a stream protocol is not supported")
    if connect.proto != "unix" and len(connect.ports) not in (1, len(listen.ports or (0,))):
        raise ProxyAddressError("Connect port count must be one or match the listen port count")


def _unix_path(path: str, pid: int | None) -> str:
    if path.startswith("@"):
        return "\0" + path[1:]
    return f"/proc/{pid}/root{path}" if pid else path


class Forwarder:
    """The sockets and tasks of one proxy device."""

    def __init__(self, listen: Address, connect: Address, *, bind: str, pid: int, mode: str = "",
                 uid: str = "", gid: str = ""):
        self.listen, self.connect = listen, connect
        self.bind, self.pid = bind, pid
        self.mode, self.uid, self.gid = mode, uid, gid
        self._servers: list[asyncio.AbstractServer] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._tasks: set[asyncio.Task] = set()
        self._unix_paths: list[str] = []

    # ---- sockets in the right namespace ------------------------------------------------------

    def _make(self, in_instance: bool, fn):
        return run_in_netns(self.pid, fn) if in_instance else fn()

    def _listen_sockets(self) -> list[socket.socket]:
        a = self.listen
        in_inst = self.bind == "instance"
        socks = []
        if a.proto == "unix":
            path = _unix_path(a.path, self.pid if in_inst else None)

            def mk():
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                if not path.startswith("\0"):
                    with contextlib.suppress(FileNotFoundError):
                        if stat.S_ISSOCK(os.lstat(path).st_mode):
                            os.unlink(path)
                s.bind(path)
                s.listen(128)
                return s
            s = self._make(in_inst, mk)
            if not path.startswith("\0"):
                self._unix_paths.append(path)
                os.chmod(path, int(self.mode, 8) if self.mode else 0o644)
                if self.uid or self.gid:
                    os.chown(path, int(self.uid or -1), int(self.gid or -1))
            socks.append(s)
            return socks
        for port in a.ports:
            def mk(port=port):
                s = socket.socket(a.family, a.socktype)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((a.host, port))
                if a.proto == "tcp":
                    s.listen(128)
                s.setblocking(False)
                return s
            try:
                socks.append(self._make(in_inst, mk))
            except OSError:
                for s in socks:
                    s.close()
                raise
        return socks

    def _target(self, index: int):
        c = self.connect
        if c.proto == "unix":
            return _unix_path(c.path, self.pid if self.bind == "host" else None)
        port = c.ports[index] if len(c.ports) > 1 else c.ports[0]
        return (c.host, port)

    def _upstream_socket(self) -> socket.socket:
        c = self.connect

        def mk():
            s = socket.socket(c.family, c.socktype)
            s.setblocking(False)
            return s
        return self._make(self.bind == "host", mk)

    async def _open_upstream(self, index: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        in_inst = self.bind == "host"
        s = await asyncio.to_thread(self._upstream_socket) if in_inst else self._upstream_socket()
        try:
            await loop.sock_connect(s, self._target(index))
        except BaseException:
            s.close()
            raise
        return s

    # ---- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        socks = await asyncio.to_thread(self._listen_sockets)
        loop = asyncio.get_running_loop()
        try:
            for i, s in enumerate(socks):
                if self.listen.proto == "udp":
                    transport, _ = await loop.create_datagram_endpoint(lambda i=i: _UdpListener(self, i), sock=s)
                    self._transports.append(transport)
                else:
                    server = await asyncio.start_server(
                        lambda r, w, i=i: self._spawn(self._handle_stream(r, w, i)), sock=s)
                    self._servers.append(server)
        except BaseException:
            await self.stop()
            for s in socks:
                s.close()
            raise

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        try:
            up = await self._open_upstream(index)
        except OSError as e:
            log.info("proxy %s -> %s: connect failed: %s", self.listen, self.connect, e)
            writer.close()
            return
        ureader, uwriter = await asyncio.open_connection(sock=up)
        await asyncio.gather(_pipe(reader, uwriter), _pipe(ureader, writer), return_exceptions=True)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for t in self._transports:
            t.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._servers, self._transports, self._unix_paths = [], [], []


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFSIZE):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        if reader.at_eof():
            await asyncio.sleep(0)
        writer.close()


class _UdpListener(asyncio.DatagramProtocol):
    """One listening UDP socket: a connected upstream socket per client address."""

    def __init__(self, fwd: Forwarder, index: int):
        self.fwd, self.index = fwd, index
        self.transport: asyncio.DatagramTransport | None = None
        self.peers: dict = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        peer = self.peers.get(addr)
        if peer is not None:
            peer.send(data)
            return
        self.fwd._spawn(self._open(addr, data))

    async def _open(self, addr, first: bytes) -> None:
        try:
            s = await self.fwd._open_upstream(self.index)
        except OSError as e:
            log.info("udp proxy: connect failed: %s", e)
            return
        loop = asyncio.get_running_loop()
        transport, peer = await loop.create_datagram_endpoint(lambda: _UdpPeer(self, addr), sock=s)
        self.peers[addr] = peer
        self.fwd._transports.append(transport)
        peer.send(first)

    def connection_lost(self, exc) -> None:
        for p in list(self.peers.values()):
            p.close()


class _UdpPeer(asyncio.DatagramProtocol):
    def __init__(self, listener: _UdpListener, addr):
        self.listener, self.addr = listener, addr
        self.transport = None
        self._timer = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._touch()

    def _touch(self) -> None:
        if self._timer:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(UDP_IDLE_SECONDS, self.close)

    def send(self, data: bytes) -> None:
        self._touch()
        self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr) -> None:
        self._touch()
        if self.listener.transport is not None:
            self.listener.transport.sendto(data, self.addr)

    def close(self) -> None:
        if self._timer:
            self._timer.cancel()
        self.listener.peers.pop(self.addr, None)
        if self.transport is not None:
            self.transport.close()


class ProxyManager:
    """The daemon's running proxy devices, keyed by (project, instance, device)."""

    def __init__(self, daemon):
        self.d = daemon
        self._active: dict[tuple[str, str, str], Forwarder] = {}

    async def start_device(self, key: tuple[str, str, str], config: dict[str, str], pid: int) -> None:
        await self.stop_device(key)
        listen, connect = parse_address(config["listen"]), parse_address(config["connect"])
        fwd = Forwarder(listen, connect, bind=config.get("bind") or "host", pid=pid, mode=config.get("mode", ""),
                        uid=config.get("uid", ""), gid=config.get("gid", ""))
        await fwd.start()
        self._active[key] = fwd

    async def stop_device(self, key: tuple[str, str, str]) -> None:
        fwd = self._active.pop(key, None)
        if fwd is not None:
            await fwd.stop()

    def running(self, key: tuple[str, str, str]) -> bool:
        return key in self._active

    async def restore(self) -> None:
        """After a daemon restart: forward again for every running instance's proxy devices."""
        for inst in await self.d.instances.load_local(None):
            proxies = {n: c for n, c in inst.devices.items() if c.get("type") == "proxy"}
            if not proxies:
                continue
            pid = self.d.instances.driver.init_pid(self.d.instances.driver_name(inst.project, inst.name))
            if not pid:
                continue
            for dev, conf in sorted(proxies.items()):
                try:
                    await self.start_device((inst.project, inst.name, dev), conf, pid)
                except (OSError, ValueError) as e:
                    log.warning("instance %s: proxy device %s: %s", inst.name, dev, e)

    async def shutdown(self) -> None:
        for key in list(self._active):
            await self.stop_device(key)
