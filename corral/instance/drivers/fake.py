"""An in-memory instance driver: the daemon's mock mode (`corrald --mock`) and tests.

It keeps each instance's power state in a dict and runs nothing: no liblxc, no process, no cgroup,
no mount, no namespace. `start` checks what a real start needs from the daemon (a rootfs directory)
and records the spec; `exec` runs no command and reports a clean exit (0) with empty output; the
console is a pty nobody reads on the other side. It keeps LXD's layout link `containers/<name>`
(a symlink into the instance volume), as the liblxc driver does, so the layout code works unchanged.
Its state is lost when the daemon stops: after a restart every instance is stopped.
"""
from __future__ import annotations

import os
import threading
from typing import Callable

from corral.instance.drivers import lxclayout
from corral.instance.drivers.base import DriverError, ExecProcess, InstanceDriver, InstanceSpec

STATUS_CODES = {"Running": 103, "Stopped": 102, "Frozen": 110}


class FakeExecProcess(ExecProcess):
    """A command that ran nothing and ended with exit code 0. Its output pipes are at EOF; input
    written to it is discarded. Killing it before `wait` makes it end with 128+signal."""

    def __init__(self, interactive: bool):
        self.pid = 0
        self._code = 0
        self._done = threading.Event()
        self._lock = threading.Lock()
        if interactive:
            master, slave = os.openpty()
            os.close(slave)   # nothing on the other side: the reader sees EOF/EIO at once
            self.pty = master
        else:
            self.stdin = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)   # input is discarded
            self.stdout, out_w = os.pipe()
            self.stderr, err_w = os.pipe()
            for fd in (out_w, err_w):
                os.close(fd)
        self.size = (80, 24)

    def wait(self) -> int:
        with self._lock:
            self._done.set()
            return self._code

    def kill(self, signum: int) -> None:
        with self._lock:
            if not self._done.is_set():
                self._code = 128 + signum

    def resize(self, width: int, height: int) -> None:
        self.size = (width, height)


class FakeDriver(InstanceDriver):
    """Same constructor as the liblxc driver, so the daemon builds either the same way."""

    def __init__(self, lxcpath: str, on_stopped: Callable[[str], None] | None = None, logpath: str | None = None):
        self.lxcpath = lxcpath
        self.logpath = logpath or os.path.join(os.path.dirname(lxcpath), "logs")
        self.on_stopped = on_stopped
        self._status: dict[str, str] = {}
        self._specs: dict[str, InstanceSpec] = {}
        self._limits: dict[str, dict[str, str]] = {}
        self._consoles: dict[str, tuple[int, int]] = {}   # name -> (master, slave) while running
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        os.makedirs(lxcpath, mode=0o711, exist_ok=True)

    # ---- definitions ----------------------------------------------------------------------

    def config_path(self, name: str) -> str:
        return lxclayout.conf_path(self.logpath, name)

    def phys_links(self, name: str) -> list[str]:
        return []   # no host interface is ever handed to a fake instance

    def create(self, spec: InstanceSpec) -> None:
        lxclayout.link(self.lxcpath, self.logpath, spec.name, os.path.dirname(spec.rootfs))
        with self._lock:
            self._specs[spec.name] = spec
            self._status.setdefault(spec.name, "Stopped")
        self.calls.append(("create", spec.name))

    def delete(self, name: str) -> None:
        with self._lock:
            if self._status.get(name, "Stopped") != "Stopped":
                raise DriverError(f'Instance "{name}" is running', 400)
            self._status.pop(name, None)
            self._specs.pop(name, None)
            self._limits.pop(name, None)
        lxclayout.unlink(self.lxcpath, self.logpath, name)
        self.calls.append(("delete", name))

    def list_running(self) -> list[str]:
        with self._lock:
            return sorted(n for n, s in self._status.items() if s != "Stopped")

    def list_defined(self) -> list[str]:
        return sorted(set(self.list_running()) | set(lxclayout.defined(self.lxcpath, self.logpath)))

    # ---- power ----------------------------------------------------------------------------

    def start(self, spec: InstanceSpec) -> None:
        if not os.path.isdir(spec.rootfs):
            raise DriverError(f'Failed to start instance "{spec.name}": rootfs {spec.rootfs} is missing')
        self.create(spec)
        for path in (spec.log_file, spec.console_log_file):
            if path:
                os.makedirs(os.path.dirname(path), exist_ok=True)
        with self._lock:
            if self._status.get(spec.name, "Stopped") != "Stopped":
                raise DriverError(f'Instance "{spec.name}" is already running', 409)
            self._status[spec.name] = "Running"
            self._consoles[spec.name] = os.openpty()
        self.calls.append(("start", spec.name))

    def stop(self, name: str, force: bool = False, timeout: int = 30) -> None:
        with self._lock:
            if self._status.get(name, "Stopped") == "Stopped":
                raise DriverError(f'Instance "{name}" is not running', 400)
            self._status[name] = "Stopped"
            for fd in self._consoles.pop(name, ()):
                os.close(fd)
        self.calls.append(("stop", name))

    def freeze(self, name: str) -> None:
        with self._lock:
            if self._status.get(name) != "Running":
                raise DriverError(f'Instance "{name}" is not running', 400)
            self._status[name] = "Frozen"
        self.calls.append(("freeze", name))

    def unfreeze(self, name: str) -> None:
        with self._lock:
            if self._status.get(name) == "Frozen":
                self._status[name] = "Running"
        self.calls.append(("unfreeze", name))

    def status(self, name: str) -> str:
        with self._lock:
            return self._status.get(name, "Stopped")

    def init_pid(self, name: str) -> int:
        return 0   # there is no process

    def state(self, name: str) -> dict:
        status = self.status(name)
        return {"status": status, "status_code": STATUS_CODES[status], "disk": {},
                "memory": {"usage": 0, "usage_peak": 0, "swap_usage": 0, "swap_usage_peak": 0},
                "network": None if status == "Stopped" else {}, "pid": 0, "processes": 0, "cpu": {"usage": 0}}

    # ---- exec, console, limits ------------------------------------------------------------

    def _running(self, name: str) -> None:
        if self.status(name) == "Stopped":
            raise DriverError(f'Instance "{name}" is not running', 400)

    def exec(self, name: str, command: list[str], env: dict[str, str], cwd: str = "/",
             uid: int = 0, gid: int = 0, interactive: bool = False,
             width: int = 80, height: int = 24) -> FakeExecProcess:
        if not command:
            raise DriverError("Empty command", 400)
        self._running(name)
        self.calls.append(("exec", name))
        proc = FakeExecProcess(interactive)
        proc.resize(width, height)
        return proc

    def console_log(self, name: str) -> bytes:
        spec = self._specs.get(name)
        if spec is None or not spec.console_log_file:
            return b""
        try:
            with open(spec.console_log_file, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def console(self, name: str) -> int:
        self._running(name)
        with self._lock:
            master, _slave = self._consoles[name]
            return os.dup(master)

    def apply_limits(self, name: str, config: dict[str, str]) -> None:
        self._running(name)
        with self._lock:
            self._limits[name] = {k: v for k, v in config.items() if k.startswith("limits.")}

    def limits(self, name: str) -> dict[str, str]:
        """What the last apply_limits set (for tests)."""
        with self._lock:
            return dict(self._limits.get(name, {}))
