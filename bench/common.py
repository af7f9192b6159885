"""Shared parts of the growth and density benchmarks: LXD and corrald as comparable targets.

Each target runs its daemon in a private state directory under /var/tmp, with a `dir` pool
`default` and no network (the same preseed for both), and the same busybox image imported under
the alias `bench-busybox`. Targets know their daemon's pid, their liblxc monitor processes and how
to restart the daemon without stopping the containers, and clean up everything they made
(containers, daemon, mounts, state directory), also on Ctrl-C or SIGTERM (see `interrupts`).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench import LXD as _LXD, PRESEED  # noqa: E402
from helpers import Corrald, UnixConn, busybox_tarball  # noqa: E402

IMAGE = "bench-busybox"


def api_get(socket_path: str, path: str, timeout: float = 300) -> bytes:
    """The body of one GET over a daemon's unix socket (a non-200 answer raises)."""
    conn = UnixConn(socket_path, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
        return body
    finally:
        conn.close()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def pss_kib(pid: int) -> int:
    """Proportional set size of one process (KiB): its private pages plus its share of shared ones."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def monitors(lxcpath: str) -> list[int]:
    """Pids of liblxc's `[lxc monitor] <lxcpath> <name>` processes for containers under `lxcpath`."""
    out = []
    prefix = f"[lxc monitor] {lxcpath.rstrip('/')} ".encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(prefix):
            out.append(int(d))
    return out


class Target:
    """What both benchmarks need of a daemon under test."""
    label = "?"
    lxcpath = ""

    def lxc(self, *args, check=True, timeout=300) -> subprocess.CompletedProcess:
        raise NotImplementedError

    socket = ""

    def pid(self) -> int:
        raise NotImplementedError

    def api_get(self, path: str, timeout: float = 300) -> bytes:
        """One GET over the daemon's unix socket (no client start-up in the figure)."""
        return api_get(self.socket, path, timeout)

    def memory(self) -> dict:
        """Daemon RSS and PSS, and the monitors' PSS (KiB)."""
        mons = monitors(self.lxcpath)
        pid = self.pid()
        return {"daemon_rss": rss_kib(pid), "daemon_pss": pss_kib(pid), "monitors": len(mons),
                "monitor_pss": sum(pss_kib(p) for p in mons), "monitor_pids": mons}

    def import_image(self) -> None:
        self.lxc("image", "import", busybox_tarball(), "--alias", IMAGE)

    def names(self) -> list[str]:
        res = self.lxc("list", "-c", "n", "--format", "csv", check=False, timeout=120)
        return [n for n in res.stdout.split() if n] if res.returncode == 0 else []

    def delete_all(self) -> None:
        names = self.names()
        for i in range(0, len(names), 50):
            self.lxc("delete", "-f", *names[i:i + 50], check=False, timeout=600)


class LXDTarget(_LXD, Target):
    label = "LXD"

    def __init__(self):
        super().__init__()
        self.lxcpath = os.path.join(self.dir, "containers")

    def lxc(self, *args, check=True, timeout=300):
        return subprocess.run(["lxc", *args], env=self.env, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def pid(self) -> int:
        return self.proc.pid

    def restart(self, timeout: float = 900) -> dict:
        """SIGTERM: LXD exits and leaves its instances running (SIGPWR would stop them). Returns
        the seconds the shutdown took and those to ready (None: not ready within `timeout`)."""
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        t1 = time.perf_counter()
        lxd = shutil.which("lxd") or "/usr/bin/lxd"
        self.proc = subprocess.Popen([lxd, "--group", "root", "--logfile", os.path.join(self.dir, "lxd.log")],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        res = subprocess.run([lxd, "waitready", "--timeout", str(int(timeout))], env=self.env)
        return {"shutdown_s": t1 - t0, "ready_s": time.perf_counter() - t1 if res.returncode == 0 else None}

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.delete_all()
        super().cleanup()


class CorraldTarget(Target):
    label = "corrald"

    def __init__(self):
        self.c = Corrald()
        self.dir = self.c.dir
        self.socket = self.c.socket
        self.lxcpath = os.path.join(self.dir, "containers")

    def start(self) -> "CorraldTarget":
        self.c.start()
        self.c.run("corrald", "init", "--preseed", input=PRESEED, check=True)
        return self

    def lxc(self, *args, check=True, timeout=300):
        res = self.c.run("lxc", *args, timeout=timeout)
        if check and res.returncode != 0:
            raise subprocess.CalledProcessError(res.returncode, ["lxc", *args], res.stdout, res.stderr)
        return res

    def pid(self) -> int:
        return self.c.proc.pid

    def restart(self, timeout: float = 900) -> dict:
        """`corrald shutdown`: the daemon exits, its containers keep running. Returns the seconds
        the shutdown took and those to ready (None: not ready within `timeout`)."""
        t0 = time.perf_counter()
        self.c.stop(timeout)
        t1 = time.perf_counter()
        try:
            self.c.start(timeout)
        except AssertionError:   # waitready timed out: reported, not fatal
            return {"shutdown_s": t1 - t0, "ready_s": None}
        return {"shutdown_s": t1 - t0, "ready_s": time.perf_counter() - t1}

    def cleanup(self) -> None:
        self.c.cleanup()


def _interrupt(*_):
    raise KeyboardInterrupt()


@contextlib.contextmanager
def interrupts():
    """SIGTERM behaves as Ctrl-C. Clean-up code calls `shielded()` first (further Ctrl-Cs and
    SIGTERMs are ignored until `restore_signals()`), so a second Ctrl-C cannot leave things behind."""
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def shielded() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def restore_signals() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def cleanup_image() -> None:
    from helpers import _IMAGE_CACHE
    if "path" in _IMAGE_CACHE:
        shutil.rmtree(os.path.dirname(_IMAGE_CACHE.pop("path")), ignore_errors=True)


def say(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def available_mib() -> int:
    """MemAvailable of the host, in MiB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0
