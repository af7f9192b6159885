"""Running a command in a container: through `corral-attach` (corral-attach.c next to this file,
built by scripts/setup.sh into <venv>/libexec), a small freshly exec'd process that calls liblxc's
attach, as LXD runs `lxd forkexec`. liblxc's attach clones its caller; a clone of the daemon costs
time that grows with the daemon's threads and heap (and the binding holds the GIL meanwhile).

The command is our child once the helper has exited (it is orphaned to us, a child subreaper); a
thread reaps it as soon as it exits.
"""
from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time

from corral.instance.drivers import cgroups
from corral.instance.drivers.base import DriverError, ExecProcess
from corral.instance.tty import set_winsize

TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441
HELPER = os.path.join(sys.prefix, "libexec", "corral-attach")
HELPER_TIMEOUT = 30
HELPER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


class LXCExecProcess(ExecProcess):
    """The attached process is our child. A thread reaps it as soon as it exits, whether or not
    anyone waits: an unreaped zombie from the container's pid namespace keeps the container's
    init from dying, so a stop would hang."""

    def __init__(self, pid: int, pty: int | None = None, stdin: int | None = None,
                 stdout: int | None = None, stderr: int | None = None):
        self.pid, self.pty, self.stdin, self.stdout, self.stderr = pid, pty, stdin, stdout, stderr
        self._pidfd = os.pidfd_open(pid)  # signals never reach a recycled pid
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._code = -1
        threading.Thread(target=self._reap, daemon=True, name=f"exec-{pid}").start()

    def _reap(self) -> None:
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        with self._lock:
            self._code = 128 - code if code < 0 else code
            os.close(self._pidfd)
            self._done.set()

    def wait(self) -> int:
        self._done.wait()
        return self._code

    def kill(self, signum: int) -> None:
        with self._lock:
            if not self._done.is_set():
                try:
                    signal.pidfd_send_signal(self._pidfd, signum)
                except ProcessLookupError:  # exited, not reaped yet
                    pass

    def resize(self, width: int, height: int) -> None:
        if self.pty is not None:
            set_winsize(self.pty, width, height)


def _host_id(pid: int, kind: str, nsid: int) -> int:
    """The host id of `nsid` in the user namespace of `pid` (kind: "uid" or "gid")."""
    with open(f"/proc/{pid}/{kind}_map") as f:
        for line in f:
            inside, outside, count = (int(x) for x in line.split())
            if inside <= nsid < inside + count:
                return outside + nsid - inside
    raise DriverError(f"{kind} {nsid} is not mapped in the instance", 400)


def container_pty(init_pid: int, uid: int, gid: int) -> tuple[int, int]:
    """A pty pair from the container's own devpts (so `tty` inside names /dev/pts/N), the slave
    owned by the exec user, as LXD does."""
    master = os.open(f"/proc/{init_pid}/root/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        os.fchown(slave, _host_id(init_pid, "uid", uid), _host_id(init_pid, "gid", gid))
    except BaseException:
        os.close(master)
        raise
    return master, slave


def cgroup_dirs(init_pid: int, name: str) -> list[str]:
    """The helper's cgroup arguments for container `name` ("1:DIR" v1, "2:DIR" v2): where the
    helper puts the command itself, sparing liblxc's move (an RCU grace period per exec, see
    corral-attach.c). Empty (liblxc moves it) when the layout is not understood."""
    try:
        v1, v2 = cgroups.attach_dirs(init_pid, name)
    except (OSError, KeyError, ValueError):
        return []
    return [f"1:{d}" for d in v1] + ([f"2:{v2}"] if v2 else [])


def attach(lxcpath: str, name: str, config: str, command: list[str], env: dict[str, str], cwd: str,
           uid: int, gid: int, interactive: bool, fds: tuple[int, int, int], cgroup_args: list[str]) -> int:
    """Start `command` in container `name` with `fds` as its stdin, stdout and stderr (one pty
    slave when interactive: then it leads a session with it as controlling tty), in the cgroups
    `cgroup_args` name (cgroup_dirs()); its pid."""
    if not os.access(HELPER, os.X_OK):
        raise DriverError(f"The exec helper {HELPER} is not built (scripts/setup.sh builds it)", 500)
    args = [HELPER, lxcpath, name, config, str(uid), str(gid), cwd, "pty" if interactive else "pipe",
            *map(str, fds), str(len(env)), *(f"{k}={v}" for k, v in env.items()),
            str(len(cgroup_args)), *cgroup_args, "--", *command]
    try:
        code, output = _run_helper(args, fds)
    except ValueError as e:   # a NUL byte in the command or the environment
        raise DriverError(f"Invalid command or environment: {e}", 400) from e
    except OSError as e:
        raise DriverError(f'Failed to exec in instance "{name}": cannot run {HELPER}: {e.strerror}') from e
    out = output.decode(errors="replace").strip()
    last = out.rsplit("\n", 1)[-1]
    if code == 0 and last.startswith("pid ") and last[4:].isdigit():
        return int(last[4:])
    raise DriverError(f'Failed to exec in instance "{name}": {out or f"exit status {code}"}')


def _run_helper(args: list[str], fds: tuple[int, int, int]) -> tuple[int, bytes]:
    """Run the helper: (its exit status, what it printed). Not subprocess.run(timeout=): its wait
    with a timeout polls with growing sleeps, which added up to 16 ms to an exec."""
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            pass_fds=fds, env=HELPER_ENV, cwd="/")
    with proc:
        poller = select.poll()
        poller.register(proc.stdout, select.POLLIN)
        deadline = time.monotonic() + HELPER_TIMEOUT
        chunks = []
        while (left := deadline - time.monotonic()) > 0:
            if not poller.poll(left * 1000):
                continue
            if not (chunk := os.read(proc.stdout.fileno(), 65536)):
                return proc.wait(), b"".join(chunks)   # EOF: it is exiting
            chunks.append(chunk)
        proc.kill()
        proc.wait()
        return -1, b"".join(chunks) + f"\n{HELPER} timed out after {HELPER_TIMEOUT}s".encode()
