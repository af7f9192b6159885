"""The container driver, on liblxc (through the `lxc` Python binding).

Each container gets a liblxc configuration regenerated from the InstanceSpec at every start, kept
in logs/<name>/lxc.conf; <lxcpath>/<name> links to the instance volume (see lxclayout.py, LXD's layout).
Containers start through `lxc-start -d` (a fresh exec, not a fork of the daemon), so each
`[lxc monitor]` is a small process whose memory does not depend on the daemon's size or age.
This process must be a child subreaper: liblxc's monitor and every exec'd command end up as our
children, and PID 1 here does not reap orphans. The driver sets that flag itself.
"""
from __future__ import annotations

import glob
import os
import re
import select
import shutil
import subprocess
import time
from typing import Callable

import lxc

from corral.instance.drivers import cgroups, lxcconf, lxcexec, lxclayout, monitor, netstate
from corral.instance.drivers.base import DriverError, InstanceDriver, InstanceSpec
from corral.instance.drivers.lxcexec import LXCExecProcess
from corral.instance.drivers.netstate import network_state
from corral.instance.drivers.watcher import MonitorWatcher
from corral.instance.tty import set_winsize
from corral.reaper import become_subreaper

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STATUS = {  # liblxc state -> LXD status and status code
    "STOPPED": ("Stopped", 102), "STARTING": ("Starting", 106), "RUNNING": ("Running", 103),
    "STOPPING": ("Stopping", 107), "ABORTING": ("Aborting", 108), "FREEZING": ("Freezing", 109),
    "FROZEN": ("Frozen", 110), "THAWED": ("Running", 103),
}
LOG_TAIL = 4096
LXC_START = shutil.which("lxc-start") or "/usr/bin/lxc-start"
START_TIMEOUT = 60


def _log_since(path: str, offset: int, fallback: str = "") -> str:
    """The ERROR lines liblxc logged after `offset` (or its last lines), at most LOG_TAIL bytes;
    `fallback` (what lxc-start printed) when the log has nothing."""
    lines = []
    if path:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            pass
    errors = [line for line in lines if " ERROR " in line] or lines or fallback.splitlines()
    return "\n".join(errors)[-LOG_TAIL:] or ("no log output" if path else "no log file configured")


class LXCDriver(InstanceDriver):
    def __init__(self, lxcpath: str, on_stopped: Callable[[str], None] | None = None, logpath: str | None = None):
        """on_stopped(name) runs on a watcher thread whenever a container stops (one started here,
        or one an earlier daemon started, running when this driver was made).
        logpath: where logs/<name>/lxc.conf go (default: `logs` next to lxcpath)."""
        self.lxcpath = lxcpath
        self.logpath = logpath or os.path.join(os.path.dirname(lxcpath), "logs")
        self.on_stopped = on_stopped
        self._watcher = MonitorWatcher(self._stopped)
        os.makedirs(lxcpath, mode=0o711, exist_ok=True)
        become_subreaper()
        found = monitor.monitors(self.lxcpath)   # one pass over /proc, not a liblxc object each
        for name in self.list_running():   # started by an earlier daemon: watched from now on
            if name in found:
                self._watcher.watch(name, found[name])
            else:
                self._adopt(name)

    def _adopt(self, name: str) -> None:
        c = self._container(name)
        if c.running and (pid := monitor.parent(c.init_pid)):
            self._watcher.watch(name, pid)

    def _container(self, name: str) -> lxc.Container:
        c = lxc.Container(name, config_path=self.lxcpath)
        conf = self.config_path(name)
        if not c.defined and os.path.isfile(conf):
            c.load_config(conf)
        return c

    def _running(self, name: str) -> lxc.Container:
        c = self._container(name)
        if not c.running:
            raise DriverError(f'Instance "{name}" is not running', 400)
        return c

    def config_path(self, name: str) -> str:
        return lxclayout.conf_path(self.logpath, name)

    def phys_links(self, name: str) -> list[str]:
        """The host interfaces the container's config hands it (lxc.net.N.link of phys NICs): liblxc
        gives them back to the host when the container stops."""
        try:
            with open(self.config_path(name)) as f:
                text = f.read()
        except OSError:
            return []
        items: dict[str, dict[str, str]] = {}
        for line in text.splitlines():
            m = re.fullmatch(r"\s*lxc\.net\.(\d+)\.(type|link)\s*=\s*(\S+)\s*", line)
            if m:
                items.setdefault(m[1], {})[m[2]] = m[3]
        return [i["link"] for i in items.values() if i.get("type") == "phys" and i.get("link")]

    def create(self, spec: InstanceSpec) -> None:
        path = self.config_path(spec.name)
        text = lxcconf.render(spec)
        lxclayout.link(self.lxcpath, self.logpath, spec.name, os.path.dirname(spec.rootfs))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def start(self, spec: InstanceSpec) -> None:
        try:
            self.create(spec)
        except ValueError as e:
            raise DriverError(str(e), 400) from e
        for path in (spec.log_file, spec.console_log_file):
            if path:
                os.makedirs(os.path.dirname(path), exist_ok=True)
        c = self._container(spec.name)
        if c.running:
            raise DriverError(f'Instance "{spec.name}" is already running', 409)
        offset = os.path.getsize(spec.log_file) if spec.log_file and os.path.exists(spec.log_file) else 0
        started, output = self._lxc_start(spec.name)
        if not started or not c.wait("RUNNING", 10):
            if c.running:
                c.stop()
                c.wait("STOPPED", 10)
            monitor.reap_failed(self.lxcpath, spec.name, self._watcher.monitors())
            self._cleanup_cgroups(spec.name)
            reason = _log_since(spec.log_file, offset, fallback=output)
            raise DriverError(f'Failed to start instance "{spec.name}": {reason}')
        if pid := monitor.parent(c.init_pid):
            self._watcher.watch(spec.name, pid)
        from corral.instance.drivers import lxcstatus   # noqa: PLC0415 - listings only
        init = c.init_pid   # remembered: listings and metrics scrapes then need no liblxc call for it
        lxcstatus.init_pid(self.lxcpath, spec.name, lambda _n: init)

    def _lxc_start(self, name: str) -> tuple[bool, str]:
        """Start the container through liblxc's own `lxc-start -d`, a freshly exec'd process: its
        daemonized child becomes the `[lxc monitor]`, a small process of its own rather than a
        fork holding copy-on-write shares of this daemon's heap (see LXD's `lxd forkstart`). The
        monitor is double-forked, so it is orphaned to us, the child subreaper, and we reap it.
        (True when lxc-start reported success, and what it printed.)"""
        args = [LXC_START, "-n", name, "-P", self.lxcpath, "-f", self.config_path(name), "-d"]
        try:
            res = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 env={"PATH": DEFAULT_PATH, **os.environ}, cwd="/", close_fds=True, timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            return False, (e.output or b"").decode(errors="replace") + f"\nlxc-start timed out after {START_TIMEOUT}s"
        except OSError as e:
            return False, f"cannot run {LXC_START}: {e.strerror}"
        return res.returncode == 0, res.stdout.decode(errors="replace").strip()

    def _stopped(self, name: str) -> None:
        """The monitor of `name` exited (reaped by the watcher when it was our child): tidy up."""
        self._cleanup_cgroups(name)
        if self.on_stopped:
            self.on_stopped(name)

    def stop(self, name: str, force: bool = False, timeout: int = 30) -> None:
        c = self._container(name)
        if not c.running:
            return
        if not force:
            self._shutdown(c, timeout)
        if c.running and not c.stop():
            raise DriverError(f'Failed to stop instance "{name}"')
        c.wait("STOPPED", 10)
        if not self._watcher.wait(name, 5):  # the monitor exits right after the container: then cgroups go
            self._cleanup_cgroups(name)

    @staticmethod
    def _shutdown(c: lxc.Container, timeout: float) -> None:
        """Send the halt signal and wait for init to exit, re-sending every second (an init that
        has not set its handlers yet, just after start, misses it). The binding's own
        shutdown(timeout) would hold the GIL for the whole wait."""
        try:
            pidfd = os.pidfd_open(c.init_pid)
        except (OSError, ValueError):
            return
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                c.shutdown(0)  # signal only, no wait
                if poller.poll(min(left, 1.0) * 1000):
                    break
        finally:
            os.close(pidfd)

    def freeze(self, name: str) -> None:
        if not self._running(name).freeze():
            raise DriverError(f'Failed to freeze instance "{name}"')

    def unfreeze(self, name: str) -> None:
        if not self._container(name).unfreeze():
            raise DriverError(f'Failed to unfreeze instance "{name}"')

    def delete(self, name: str) -> None:
        if self._container(name).running:
            raise DriverError(f'Instance "{name}" is running', 400)
        lxclayout.unlink(self.lxcpath, self.logpath, name)
        self._cleanup_cgroups(name)

    def status(self, name: str) -> str:
        return STATUS.get(self._container(name).state, ("Stopped", 102))[0]

    def statuses(self, names: list[str]) -> dict[str, str]:
        from corral.instance.drivers import lxcstatus   # noqa: PLC0415 - listings only
        return lxcstatus.statuses(self.lxcpath, names, self.status)

    def init_pid(self, name: str) -> int:
        c = self._container(name)
        return max(c.init_pid, 0) if c.running else 0

    def running_pids(self, names: list[str]) -> dict[str, int]:
        from corral.instance.drivers import lxcstatus   # noqa: PLC0415 - listings only
        out = {}
        for n, status in lxcstatus.statuses(self.lxcpath, names, self.status).items():
            if status in ("Running", "Frozen", "Freezing") and \
                    (pid := lxcstatus.init_pid(self.lxcpath, n, self.init_pid)) > 0:
                out[n] = pid
        return out

    def list_running(self) -> list[str]:
        return sorted(lxc.list_containers(active=True, defined=False, config_path=self.lxcpath))

    def list_defined(self) -> list[str]:
        return sorted(set(self.list_running()) | set(lxclayout.defined(self.lxcpath, self.logpath)))

    def state(self, name: str) -> dict:
        c = self._container(name)
        status, code = STATUS.get(c.state, ("Stopped", 102))
        return self.state_of(name, status, code, c.init_pid if c.running else -1)

    def states(self, names: list[str]) -> dict[str, dict]:
        from corral.instance.drivers import lxcstatus   # noqa: PLC0415 - listings only
        return lxcstatus.states(self, names)

    @staticmethod
    def state_of(name: str, status: str, code: int, pid: int) -> dict:
        """The state of `name` whose status and init pid are known."""
        if pid <= 0:
            return {"status": status, "status_code": code, "disk": {},
                    "memory": {"usage": 0, "usage_peak": 0, "swap_usage": 0, "swap_usage_peak": 0},
                    "network": None, "pid": 0, "processes": 0, "cpu": {"usage": 0}}
        cg = cgroups.of_pid(pid, name)
        return {"status": status, "status_code": code, "disk": {}, "memory": cg.memory(),
                "network": network_state(pid), "pid": pid, "processes": cg.processes(),
                "cpu": {"usage": cg.cpu_usage()}}

    def exec(self, name: str, command: list[str], env: dict[str, str], cwd: str = "/",
             uid: int = 0, gid: int = 0, interactive: bool = False,
             width: int = 80, height: int = 24) -> LXCExecProcess:
        if not command:
            raise DriverError("Empty command", 400)
        c = self._running(name)
        if interactive:
            master, slave = lxcexec.container_pty(c.init_pid, uid, gid)
            set_winsize(master, width, height)
            child_fds, ours = (slave, slave, slave), {"pty": master}
        else:
            in_r, in_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            child_fds, ours = (in_r, out_w, err_w), {"stdin": in_w, "stdout": out_r, "stderr": err_r}
        env = {"PATH": DEFAULT_PATH, **env}
        try:
            pid = lxcexec.attach(self.lxcpath, name, self.config_path(name), list(command), env, cwd,
                                 uid, gid, interactive, child_fds, lxcexec.cgroup_dirs(c.init_pid, name))
        except BaseException:
            for fd in ours.values():
                os.close(fd)
            raise
        finally:
            for fd in set(child_fds):
                os.close(fd)
        return LXCExecProcess(pid, **ours)

    def console_log(self, name: str) -> bytes:
        path = self._container(name).get_config_item("lxc.console.logfile")
        if not isinstance(path, str) or not path:
            return b""
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def console(self, name: str) -> int:
        fd = self._running(name).console_getfd(0)  # 0: the console itself (there are no ttys)
        if not isinstance(fd, int) or fd < 0:
            raise DriverError(f'Failed to attach to the console of "{name}"')
        return fd

    def apply_limits(self, name: str, config: dict[str, str]) -> None:
        c = self._running(name)
        try:
            cgroups.of_pid(c.init_pid, name).apply(lxcconf.cgroup_limits(config, reset=True))
        except (OSError, ValueError) as e:
            raise DriverError(f'Failed to apply limits to "{name}": {e}', 400) from e

    @staticmethod
    def _cleanup_cgroups(name: str) -> None:
        """liblxc leaves an empty lxc.monitor.<name> cgroup in every v1 hierarchy at each start.
        Cached netlink sockets into stopped containers' netns are closed here too."""
        netstate.prune()
        for kind in ("monitor", "payload"):
            for path in glob.glob(f"{cgroups.ROOT}/*/lxc.{kind}.{name}") + \
                    glob.glob(f"{cgroups.ROOT}/*/lxc.{kind}.{name}-[0-9]*"):
                cgroups.remove_tree(path)
