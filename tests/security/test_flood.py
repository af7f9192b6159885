"""Issue 9, finding 3: an unauthenticated connection flood must not take the daemon down.

About 20,000 idle TLS connections used to exhaust corrald's file descriptors: the log grew by
111 MB in 30 s, `lxc start` failed and the database connection was lost for good. Here corrald runs
under a small RLIMIT_NOFILE (4096, so the caps derived from it are reached quickly) and short
timeouts (environment knobs, docs/production.md); every flood is on loopback and bounded in count
and time.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import json
import os
import resource
import socket
import ssl
import subprocess
import threading
import time

import pytest

from helpers import Corrald, free_port, unique, wait_for

from corral.netguard import PER_PEER, fd_budget

NOFILE = 4096
HTTPS_CAP = fd_budget(NOFILE)["https"]
UNIX_CAP = fd_budget(NOFILE)["unix"]
HEADER, IDLE, HANDSHAKE = 3.0, 4.0, 3.0
FLOOD_HEADER, FLOOD_HANDSHAKE = 10.0, 10.0   # long enough for the flood to reach the caps first
LOG_BUDGET = 4096   # "the log grows by at most a few KB"


@pytest.fixture(scope="module", autouse=True)
def _many_fds():
    """The test process itself opens thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def limited_corrald(nofile: int = NOFILE, **env):
    d = Corrald()
    d.wrapper = ["prlimit", f"--nofile={nofile}:{nofile}", "--"]
    d.env.update({"CORRAL_HEADER_TIMEOUT": str(HEADER), "CORRAL_IDLE_TIMEOUT": str(IDLE),
                  "CORRAL_HANDSHAKE_TIMEOUT": str(HANDSHAKE)}, **env)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def corrald():
    with limited_corrald() as d:
        port = free_port()
        d.lxc("config", "set", "core.https_address", f"127.0.0.1:{port}")
        d.port = port
        yield d


def log_size(d) -> int:
    return sum(os.path.getsize(p) for p in log_files(d))


def log_files(d) -> list[str]:
    return [os.path.join(d.dir, "test-corrald.log"), os.path.join(d.dir, "logs", "corrald.log")]


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def timed_list(d) -> float:
    t = time.monotonic()
    d.lxc("list", "--format", "csv", timeout=60)
    return time.monotonic() - t


def client_tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Sampler(threading.Thread):
    """Runs `lxc list` and samples corrald's open file descriptors while a flood goes on."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d, self.stop, self.latencies, self.errors, self.max_fds = d, threading.Event(), [], [], 0
        self.fd_times: list[tuple[float, int]] = []

    def run(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            n = fd_count(self.d.proc.pid)
            self.max_fds = max(self.max_fds, n)
            self.fd_times.append((time.monotonic() - t0, n))
            try:
                self.latencies.append(timed_list(self.d))
            except Exception as e:   # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
            time.sleep(0.2)


async def _watch(reader) -> None:
    with contextlib.suppress(OSError):
        await reader.read(1)    # b"" at EOF; a reset raises


async def _open(port: int, src: str, ctx, conns: list, refused: list) -> None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, local_addr=(src, 0),
                                    server_hostname="" if ctx else None), 20)
    except (OSError, asyncio.TimeoutError):
        refused.append(src)
        return
    entry = {"src": src, "writer": writer, "task": asyncio.ensure_future(_watch(reader)),
             "open": time.monotonic(), "close": None}
    entry["task"].add_done_callback(lambda _t: entry.update(close=time.monotonic()))
    conns.append(entry)


async def _flood_and_wait(port, plan: list[tuple[str, int, bool]]):
    """Open connections per (source address, count, tls) and leave them idle. A connection the daemon
    refuses fails its TLS handshake or is closed before any timeout could have fired (it may have
    waited in the listen backlog first); one it keeps must be closed by its handshake or header
    timeout. (The total cap is checked on the daemon's side: its open file descriptors.)"""
    quick = min(FLOOD_HANDSHAKE, FLOOD_HEADER) - 1
    conns, refused = [], []
    sem = asyncio.Semaphore(256)
    ctx = client_tls()

    async def one(src, tls):
        async with sem:
            await _open(port, src, ctx if tls else None, conns, refused)

    for src, n, tls in plan:
        await asyncio.gather(*(one(src, tls) for _ in range(n)))
    _, pending = await asyncio.wait([c["task"] for c in conns], timeout=max(FLOOD_HANDSHAKE, FLOOD_HEADER) + 8)
    end = time.monotonic()
    for t in pending:
        t.cancel()
    await asyncio.sleep(0)
    for c in conns:
        c["writer"].transport.abort()
    kept = [c for c in conns if c["close"] is None or c["close"] - c["open"] >= quick]
    lifetimes = [c["close"] - c["open"] for c in kept if c["close"] is not None]
    return {"kept": len(kept),
            "kept_per_source": dict(collections.Counter(c["src"] for c in kept)),
            "refused": len(refused) + len(conns) - len(kept), "still_open": len(pending),
            "kept_lifetime_s": [round(min(lifetimes or [0]), 1), round(max(lifetimes or [0]), 1)]}


def test_https_flood_leaves_lxc_list_answering_and_the_log_small():
    with limited_corrald(CORRAL_HANDSHAKE_TIMEOUT=str(FLOOD_HANDSHAKE), CORRAL_HEADER_TIMEOUT=str(FLOOD_HEADER),
                         CORRAL_IDLE_TIMEOUT="60") as d:
        d.port = free_port()
        d.lxc("config", "set", "core.https_address", f"127.0.0.1:{d.port}")
        _https_flood(d)


def _https_flood(d):
    base_fds = fd_count(d.proc.pid)
    base_log = log_size(d)
    daemon_log_start = os.path.getsize(log_files(d)[1])
    sampler = Sampler(d)
    # 300 completed TLS handshakes that never send a request (127.0.0.14 and .15); 1,000 TCP
    # connections that never start TLS from 127.0.0.1 (over the per-peer cap); then 3,000 more from
    # 12 other loopback addresses (over the total cap).
    plan = ([("127.0.0.14", 150, True), ("127.0.0.15", 150, True), ("127.0.0.1", 1000, False)] +
            [(f"127.0.0.{i}", 250, False) for i in range(2, 14)])
    sampler.start()
    t0 = time.monotonic()
    try:
        result = asyncio.run(_flood_and_wait(d.port, plan))
    finally:
        sampler.stop.set()
        sampler.join(70)
    after = [timed_list(d) for _ in range(3)]
    d.run("corrald", "sql", "global", "UPDATE config SET value = value WHERE key = 'core.https_address'",
          check=True)   # the database still answers, writes included
    d.lxc("config", "set", "user.flood", "over")
    growth = log_size(d) - base_log
    report = dict(result, opened=sum(n for _, n, _ in plan), seconds=round(time.monotonic() - t0, 1),
                  https_cap=HTTPS_CAP, base_fds=base_fds, max_fds=sampler.max_fds,
                  time_to_cap_s=next((round(t, 1) for t, n in sampler.fd_times if n >= base_fds + HTTPS_CAP - 8),
                                     None),
                  lxc_list_during_s=[round(x, 2) for x in sampler.latencies],
                  lxc_list_after_s=[round(x, 2) for x in after], log_growth_bytes=growth)
    print("flood:", json.dumps(report))
    with open(log_files(d)[1], errors="replace") as f:
        f.seek(daemon_log_start)
        print("daemon log during the flood:\n" + f.read())
    assert not sampler.errors, sampler.errors
    assert sampler.latencies and max(sampler.latencies) < 10, report
    assert report["kept_per_source"].get("127.0.0.14") == 150, report         # TLS handshakes done
    assert report["kept_per_source"].get("127.0.0.1", 0) <= PER_PEER["https"], report   # per-peer cap
    assert report["refused"] > 0, report
    assert HTTPS_CAP - 16 <= sampler.max_fds - base_fds <= HTTPS_CAP + 16, report   # the total cap, reached
    assert report["still_open"] == 0, report      # handshake and header timeouts closed the rest
    assert report["kept_lifetime_s"][1] <= max(FLOOD_HEADER, FLOOD_HANDSHAKE) + 5, report
    assert growth <= LOG_BUDGET, (report, tail(d))
    assert fd_count(d.proc.pid) <= base_fds + 8, report


def tail(d) -> str:
    with open(log_files(d)[1], errors="replace") as f:
        return f.read()[-3000:]


def _slow_client(sock: socket.socket, data: bytes, interval: float) -> tuple[int, float]:
    """Sends `data` one byte every `interval` seconds; returns (bytes sent, seconds until cut off)."""
    t0 = time.monotonic()
    sent = 0
    sock.settimeout(interval)
    for b in data:
        try:
            sock.sendall(bytes([b]))
            sent += 1
            if sock.recv(1) == b"":
                break
        except socket.timeout:
            continue
        except OSError:
            break
    return sent, time.monotonic() - t0


SLOW_REQUEST = b"GET /1.0 HTTP/1.1\r\nHost: corral\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"


def test_slowloris_is_cut_off_after_the_header_timeout(corrald):
    d = corrald
    # TLS, one header byte every 0.5 s (the whole request would take ~2 minutes).
    raw = socket.create_connection(("127.0.0.1", d.port))
    tls = client_tls().wrap_socket(raw)
    sent, took = _slow_client(tls, SLOW_REQUEST, 0.5)
    tls.close()
    assert sent < len(SLOW_REQUEST) and took <= HEADER + 2, (sent, took)
    # The unix socket, one byte a second.
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    sent, took = _slow_client(s, SLOW_REQUEST, 1.0)
    s.close()
    assert sent < len(SLOW_REQUEST) and took <= HEADER + 2, (sent, took)
    # A keep-alive connection: a first request answered, then the next header sent slowly. The header
    # timeout starts again with its first byte (not only the idle timeout, which is longer).
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    s.sendall(b"GET /1.0 HTTP/1.1\r\nHost: corral\r\n\r\n")
    s.settimeout(10)
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first[:100]
    time.sleep(IDLE / 2)      # idle, under the idle timeout
    t0 = time.monotonic()
    sent, took = _slow_client(s, SLOW_REQUEST, 0.5)
    s.close()
    assert sent < len(SLOW_REQUEST) and took <= HEADER + 2, (sent, took, time.monotonic() - t0)
    assert timed_list(d) < 10


def test_idle_keepalive_is_closed_after_the_idle_timeout_not_before(corrald):
    d = corrald
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    s.sendall(b"GET /1.0 HTTP/1.1\r\nHost: corral\r\n\r\n")
    s.settimeout(10)
    s.recv(65536)
    t0 = time.monotonic()
    s.settimeout(IDLE + 5)
    try:
        rest = s.recv(1)
    except OSError:
        rest = b""
    took = time.monotonic() - t0
    s.close()
    assert rest == b"" and IDLE - 0.5 <= took <= IDLE + 2, took


def test_thousand_idle_unix_connections():
    with limited_corrald(nofile=8192) as d:   # a unix socket cap of 1536 connections
        assert fd_budget(8192)["unix"] > 1000
        _thousand_idle_unix(d)


def _thousand_idle_unix(d):
    base_log = log_size(d)
    conns = []
    try:
        for _ in range(1000):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.socket)
            conns.append(s)
        wait_for(lambda: fd_count(d.proc.pid) >= 1000, timeout=10)
        latency = timed_list(d)   # root's lxc still gets in: root is capped only in total (UNIX_CAP)
        assert latency < 10
        t0 = time.monotonic()
        wait_for(lambda: fd_count(d.proc.pid) < 100, timeout=HEADER + 10, interval=0.2)
        closed_after = time.monotonic() - t0
    finally:
        for s in conns:
            s.close()
    print(f"unix: 1000 idle connections, lxc list {latency:.2f}s, all closed {closed_after:.1f}s later")
    assert log_size(d) - base_log <= LOG_BUDGET


def test_unix_total_cap_and_devlxd_per_uid_cap(corrald):
    d = corrald
    conns = []
    try:
        for _ in range(UNIX_CAP + 200):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.socket)
            conns.append(s)
        # Over the total cap the daemon closes at once: those see EOF.
        time.sleep(1)
        refused = sum(1 for s in conns if _eof_now(s))
        assert 150 <= refused <= 200 + 8, refused
    finally:
        for s in conns:
            s.close()
    wait_for(lambda: fd_count(d.proc.pid) < 100, timeout=HEADER + 10, interval=0.2)
    # /dev/lxd (world-connectable, reached by container users): capped per container, else per uid.
    res = subprocess.run(["/usr/bin/python3", "-c", _GUEST_FLOOD, os.path.join(d.dir, "devlxd", "sock"),
                          str(PER_PEER["devlxd"] + 20)], user=65534, group=65534, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"held": PER_PEER["devlxd"], "refused": 20}, res.stdout


# An unprivileged host user opens connections to /dev/lxd's socket; which ones does the daemon close?
_GUEST_FLOOD = """
import json, socket, sys, time
conns = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    conns.append(s)
time.sleep(1)
refused = 0
for s in conns:
    s.setblocking(False)
    try:
        refused += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        refused += 1
print(json.dumps({"held": len(conns) - refused, "refused": refused}))
"""


def _eof_now(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


def test_events_websocket_outlives_the_timeouts(corrald):
    import aiohttp

    d = corrald
    name = unique("fl")

    async def main():
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=d.socket)) as session:
            async with session.ws_connect("http://corral/1.0/events?type=lifecycle") as ws:
                await asyncio.sleep(HEADER + IDLE + 2)
                await asyncio.to_thread(d.lxc, "profile", "create", name)
                msg = await ws.receive(timeout=10)
                return json.loads(msg.data)

    try:
        event = asyncio.run(main())
        assert event["metadata"]["action"] == "profile-created", event
    finally:
        d.lxc("profile", "delete", name, check=False)


# ---- the database client reconnects -------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
SYS_pidfd_getfd = 438


def _db_sockets(pid: int) -> list[int]:
    """fds of corrald's connected unix sockets on its dqlite node's abstract address."""
    inodes = {}
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7].startswith("@corral-db-") and parts[5] == "03":
                inodes[parts[6]] = True
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:[") and target[8:-1] in inodes:
                fds.append(int(fd))
    return fds


def _shutdown_remote_socket(pid: int, fd: int) -> None:
    """shutdown(2) a socket of another process (pidfd_getfd duplicates it; shutdown acts on the socket)."""
    pidfd = os.pidfd_open(pid)
    try:
        dup = _libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        if dup < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        s = socket.socket(fileno=dup)
        s.shutdown(socket.SHUT_RDWR)
        s.close()
    finally:
        os.close(pidfd)


def test_database_connection_lost_is_reconnected(corrald):
    d = corrald
    pid = d.proc.pid
    fds = _db_sockets(pid)
    assert fds, "no connection to the dqlite node found"
    for fd in fds:   # the node's end of the daemon's one client connection
        _shutdown_remote_socket(pid, fd)
    # The next requests reconnect by themselves: reads, then writes.
    d.lxc("list")
    d.lxc("config", "set", "user.after", "reconnect")
    assert d.lxc("config", "get", "user.after").stdout.strip() == "reconnect"
    assert set(_db_sockets(pid)) - set(fds) or _db_sockets(pid), "no new database connection"
    with open(log_files(d)[1]) as f:
        text = f.read()
    assert "database connection lost" in text and "reconnected to the database node" in text, text[-2000:]


def test_slow_upload_being_handled_is_not_cut(corrald):
    """A request whose body is still arriving is being handled: neither timeout applies."""
    d = corrald
    body = b'{"config": {}}' + b" " * 9
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.socket)
    s.sendall(b"PATCH /1.0 HTTP/1.1\r\nHost: corral\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body))
    t0 = time.monotonic()
    for i in range(len(body)):   # one byte a second: longer than the header and idle timeouts together
        s.sendall(body[i:i + 1])
        time.sleep((HEADER + IDLE + 2) / len(body))
    s.settimeout(10)
    reply = s.recv(65536)
    s.close()
    assert time.monotonic() - t0 > HEADER + IDLE and reply.startswith(b"HTTP/1.1 200"), reply[:200]


def test_daemon_recovers_when_descriptors_do_run_out():
    """With the caps set above what RLIMIT_NOFILE allows, accept() fails with EMFILE: the listener
    pauses instead of spinning, the errors are logged a few times only, and once the flood is over
    everything (the database included) works again, without a restart."""
    with limited_corrald(nofile=1024, CORRAL_MAX_CONNECTIONS="100000", CORRAL_MAX_CONNECTIONS_PER_PEER="0",
                         CORRAL_HANDSHAKE_TIMEOUT="30", CORRAL_HEADER_TIMEOUT="30") as d:
        port = free_port()
        d.lxc("config", "set", "core.https_address", f"127.0.0.1:{port}")
        base_log = log_size(d)
        socks = []
        try:
            for i in range(1500):
                s = socket.socket()
                s.bind((f"127.0.1.{i % 200 + 1}", 0))
                s.connect(("127.0.0.1", port))
                socks.append(s)
            wait_for(lambda: fd_count(d.proc.pid) >= 1000, timeout=20)
            time.sleep(3)   # the daemon is out of descriptors for a while
        finally:
            for s in socks:
                s.close()
        wait_for(lambda: d.lxc("list", check=False, timeout=30).returncode == 0, timeout=30, interval=0.5)
        d.lxc("config", "set", "user.after", "flood")
        assert d.lxc("config", "get", "user.after").stdout.strip() == "flood"
        growth = log_size(d) - base_log
        with open(log_files(d)[1], errors="replace") as f:
            text = f.read()
        print(f"out of descriptors: log grew by {growth} bytes")
        assert "cannot accept connections (Too many open files)" in text
        assert growth <= LOG_BUDGET, text[-3000:]
