"""One dnsmasq per managed bridge (DHCP, router advertisements, DNS for <instance>.<dns.domain>),
supervised by the daemon.

dnsmasq runs in the foreground as the daemon's child, in its own session, so it outlives a
daemon that is killed; the daemon watches it with a pidfd, reaps it, and restarts it if it dies.
A restarted daemon finds it through its pid file and adopts it (watching it the same way)
instead of starting a second one. Host changes are picked up with SIGHUP (hosts files).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import subprocess
import time

log = logging.getLogger(__name__)

DNSMASQ = "dnsmasq"
RESTART_MIN_INTERVAL = 1.0


def build_args(*, bridge: str, netdir: str, ipv4: ipaddress.IPv4Interface | None,
               ipv6: ipaddress.IPv6Interface | None, dhcp4: bool, dhcp6: bool,
               ranges: list[tuple[str, str]] | None, expiry: str, domain: str, dns_mode: str,
               gateway: str | None = None, user: str = "nobody", group: str = "nogroup",
               dhcp6_stateful: bool = False, ranges6: list[tuple[str, str]] | None = None,
               expiry6: str = "1h", search: str | None = None) -> list[str]:
    """dnsmasq's command line, as LXD builds it for a bridge. IPv6: router advertisements always;
    with ipv6.dhcp, stateless DHCPv6 (SLAAC addresses, names from RA) or, with ipv6.dhcp.stateful,
    addresses leased from ipv6.dhcp.ranges (default: the subnet from ::2)."""
    args = [DNSMASQ, "--keep-in-foreground", "--strict-order", "--bind-interfaces", "--except-interface=lo",
            "--pid-file=", "--no-ping", f"--interface={bridge}", "--dhcp-rapid-commit",
            "--quiet-dhcp", "--quiet-dhcp6", "--quiet-ra"]
    if ipv4 is not None:
        args.append(f"--listen-address={ipv4.ip}")
    if (ipv4 is not None and dhcp4) or (ipv6 is not None and dhcp6):
        args += ["--dhcp-no-override", "--dhcp-authoritative",
                 f"--dhcp-leasefile={os.path.join(netdir, 'dnsmasq.leases')}",
                 f"--dhcp-hostsfile={os.path.join(netdir, 'dnsmasq.hosts')}"]
    if ipv4 is not None and dhcp4:
        if gateway:
            args.append(f"--dhcp-option-force=3,{gateway}")
        if search and search.strip():   # dns.search: DHCP option 119, as LXD passes it
            args.append(f"--dhcp-option-force=119,{search.strip()}")
        if ranges:
            for a, b in ranges:
                args += ["--dhcp-range", f"{a},{b},{expiry}"]
        else:
            net = ipv4.network
            hosts = [h for h in (net.network_address + 2, net.broadcast_address - 1)]
            args += ["--dhcp-range", f"{hosts[0]},{hosts[1]},{expiry}"]
    if ipv6 is not None:
        args += [f"--listen-address={ipv6.ip}", "--enable-ra"]
        prefix = ipv6.network.prefixlen
        if dhcp6 and dhcp6_stateful:
            if ranges6:
                for a, b in ranges6:
                    args += ["--dhcp-range", f"{a},{b},{prefix},{expiry6}"]
            else:
                net = ipv6.network
                args += ["--dhcp-range", f"{net.network_address + 2},{net.broadcast_address},{prefix},{expiry6}"]
        elif dhcp6:
            args += ["--dhcp-range", f"::,constructor:{bridge},ra-stateless,ra-names"]
        else:
            args += ["--dhcp-range", f"::,constructor:{bridge},ra-only"]
    if ipv4 is None and ipv6 is None:
        args.append("--port=0")
    if dns_mode != "none":
        args += ["-s", domain, f"--interface-name=_gateway.{domain},{bridge}", "-S", f"/{domain}/"]
    else:
        args.append("--port=0")
    args += [f"--conf-file={os.path.join(netdir, 'dnsmasq.raw')}", "-u", user, "-g", group]
    return args


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def find_running(netdir: str, bridge: str) -> int | None:
    """The pid of a live dnsmasq serving `bridge` from `netdir` (per its pid file), or None."""
    try:
        with open(os.path.join(netdir, "dnsmasq.pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    args = _cmdline(pid)
    if (args and os.path.basename(args[0]) == DNSMASQ and f"--interface={bridge}" in args
            and f"--conf-file={os.path.join(netdir, 'dnsmasq.raw')}" in args and not _is_zombie(pid)):
        return pid
    return None


class Dnsmasq:
    """A supervised dnsmasq for one bridge."""

    def __init__(self, netdir: str, bridge: str):
        self.netdir = netdir
        self.bridge = bridge
        self.pid: int | None = None
        self.args: list[str] = []
        self.adopted = False
        self.restarts = 0
        self._proc: subprocess.Popen | None = None
        self._pidfd: int | None = None
        self._stopping = False
        self._last_start = 0.0
        self._exited = asyncio.Event()
        self._restart_task: asyncio.Task | None = None

    @property
    def pidfile(self) -> str:
        return os.path.join(self.netdir, "dnsmasq.pid")

    @property
    def running(self) -> bool:
        return self.pid is not None

    def adopt(self) -> bool:
        """Watch an already running dnsmasq for this bridge (after a daemon restart)."""
        pid = find_running(self.netdir, self.bridge)
        if pid is None:
            return False
        self.args = _cmdline(pid)
        self.pid, self.adopted, self._stopping = pid, True, False
        self._watch(pid)
        log.info("network %s: adopted dnsmasq (pid %d)", self.bridge, pid)
        return True

    def start(self, args: list[str]) -> None:
        self.args = args
        self._stopping = False
        self._spawn()

    def _spawn(self) -> None:
        logf = open(os.path.join(self.netdir, "dnsmasq.log"), "ab")
        try:
            self._proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                          start_new_session=True, close_fds=True)
        finally:
            logf.close()
        self.pid, self.adopted = self._proc.pid, False
        self._last_start = time.monotonic()
        tmp = self.pidfile + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{self.pid}\n")
        os.replace(tmp, self.pidfile)
        self._watch(self.pid)

    def _watch(self, pid: int) -> None:
        self._exited = asyncio.Event()
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd = None
            asyncio.get_running_loop().call_soon(self._on_exit)
            return
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        code = None
        if self._proc is not None:
            code = self._proc.poll()   # reaps our child
            self._proc = None
        pid, self.pid = self.pid, None
        self._exited.set()
        if self._stopping:
            return
        log.warning("network %s: dnsmasq (pid %s) exited (status %s); restarting", self.bridge, pid, code)
        self.restarts += 1
        delay = max(0.0, RESTART_MIN_INTERVAL - (time.monotonic() - self._last_start))
        self._restart_task = loop.create_task(self._restart_later(delay))

    async def _restart_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._stopping and self.pid is None:
            try:
                self._spawn()
            except OSError as e:
                log.error("network %s: cannot restart dnsmasq: %s", self.bridge, e)

    def reload(self) -> None:
        """SIGHUP: dnsmasq re-reads its hosts files (static leases, names)."""
        self._signal(signal.SIGHUP)

    def _signal(self, sig: int) -> None:
        if self.pid is None:
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        if self._restart_task is not None:
            self._restart_task.cancel()
        if self.pid is not None:
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._exited.wait(), timeout)
            except asyncio.TimeoutError:
                self._signal(signal.SIGKILL)
                await asyncio.wait_for(self._exited.wait(), 5)
        try:
            os.unlink(self.pidfile)
        except FileNotFoundError:
            pass

    def detach(self) -> None:
        """Stop watching without stopping dnsmasq (daemon shutdown: it keeps serving)."""
        self._stopping = True
        if self._pidfd is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._pidfd)
            except RuntimeError:
                pass
            os.close(self._pidfd)
            self._pidfd = None
