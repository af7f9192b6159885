"""One thread watching every container's `[lxc monitor]` process.

A monitor exits right after its container stops. The watcher poll()s one pidfd per monitor (a
pidfd turns readable at exit, also for a process that is not our child and that nobody reaps: a
monitor an earlier daemon started), reaps the monitors that are our children (the daemon is a
child subreaper, so lxc-start's double-forked monitors are), and calls on_exit(name) for each,
on the watcher thread. A single thread, whatever the number of running containers: the daemon's
thread count (which every clone() it makes pays for) does not grow with them.
"""
from __future__ import annotations

import logging
import os
import select
import threading
from typing import Callable

log = logging.getLogger(__name__)
WALL = 0x40000000   # __WALL


class _Watch:
    __slots__ = ("name", "pid", "fd", "done")

    def __init__(self, name: str, pid: int, fd: int):
        self.name, self.pid, self.fd = name, pid, fd
        self.done = threading.Event()   # set once on_exit(name) has returned


class MonitorWatcher:
    def __init__(self, on_exit: Callable[[str], None]):
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._pending: list[_Watch] = []
        self._by_name: dict[str, _Watch] = {}
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread: threading.Thread | None = None

    def watch(self, name: str, pid: int) -> None:
        """Watch `pid`, the monitor of container `name`, from now on (it may have exited already)."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:   # gone (and reaped) already: it stopped
            fd = -1
        w = _Watch(name, pid, fd)
        with self._lock:
            self._by_name[name] = w
            self._pending.append(w)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="lxc-monitors")
                self._thread.start()
        os.write(self._wake_w, b"\0")

    def monitors(self) -> set[int]:
        """The pids of the monitors being watched."""
        with self._lock:
            return {w.pid for w in self._by_name.values()}

    def wait(self, name: str, timeout: float) -> bool:
        """Wait (up to `timeout`) until the monitor of `name` has exited and on_exit has run; False
        when `name` is not watched."""
        with self._lock:
            w = self._by_name.get(name)
        if w is None:
            return False
        w.done.wait(timeout)
        return True

    def _run(self) -> None:
        poller = select.poll()   # not select(): fds above FD_SETSIZE
        poller.register(self._wake_r, select.POLLIN)
        by_fd: dict[int, _Watch] = {}
        while True:
            gone: list[_Watch] = []
            with self._lock:
                pending, self._pending = self._pending, []
            for w in pending:
                if w.fd < 0:
                    gone.append(w)
                else:
                    by_fd[w.fd] = w
                    poller.register(w.fd, select.POLLIN)
            if not gone:
                for fd, _ in poller.poll():
                    if fd == self._wake_r:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                    elif (w := by_fd.pop(fd, None)) is not None:
                        poller.unregister(fd)
                        gone.append(w)
            for w in gone:
                self._exited(w)

    def _exited(self, w: _Watch) -> None:
        if w.fd >= 0:
            try:   # exited: waitpid returns at once when it is our child
                os.waitpid(w.pid, WALL)
            except ChildProcessError:   # not ours (started by an earlier daemon), or reaped
                pass
            os.close(w.fd)
        with self._lock:
            if self._by_name.get(w.name) is w:
                del self._by_name[w.name]
        try:
            self._on_exit(w.name)
        except Exception:
            log.exception("container %s: handling its stop failed", w.name)
        finally:
            w.done.set()
