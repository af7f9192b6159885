"""Reaping orphans. PID 1 on these hosts does not reap, so corrald is a child subreaper:
orphaned descendants (liblxc monitors, exec'd processes whose parent died) become its children.

Children that corrald itself waits for (asyncio subprocesses, exec, liblxc's own helpers) are
reaped by their owners; a zombie child nobody has reaped for GRACE_SECONDS has no owner, and the
reaper takes it. The grace is long on purpose: reaping a child its owner is about to wait for makes
the owner's waitpid fail (liblxc's attach, for one, waits for its helper processes itself).
"""
from __future__ import annotations

import asyncio
import ctypes
import glob
import logging
import os
import time

log = logging.getLogger(__name__)
PR_SET_CHILD_SUBREAPER = 36
WALL = 0x40000000
SWEEP_SECONDS = 5.0
GRACE_SECONDS = 30.0


def become_subreaper() -> None:
    """Orphaned descendants become our children (PR_SET_CHILD_SUBREAPER)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _any_zombie() -> bool:
    """Whether some child has exited and is unreaped (peeked with WNOWAIT: nothing is reaped)."""
    try:
        return os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT | WALL) is not None
    except ChildProcessError:
        return False


def children() -> set[int]:
    """The pids of this process's children (every thread's, from /proc)."""
    pids: set[int] = set()
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        try:
            with open(path) as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return pids


def _zombie_children() -> set[int]:
    zombies = set()
    for pid in children():
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == "Z":
            zombies.add(pid)
    return zombies


class Reaper:
    def __init__(self, grace: float = GRACE_SECONDS):
        self.grace = grace
        self._first_seen: dict[int, float] = {}   # zombie pid -> when a sweep first saw it
        self._task: asyncio.Task | None = None

    def sweep(self) -> int:
        if not self._first_seen and not _any_zombie():   # the usual case: no scan of every child
            return 0
        now = time.monotonic()
        zombies = _zombie_children()
        self._first_seen = {pid: self._first_seen.get(pid, now) for pid in zombies}
        reaped = 0
        for pid, since in list(self._first_seen.items()):
            if now - since < self.grace:
                continue
            try:
                # __WALL: also children whose exit signal is not SIGCHLD (clone()d by liblxc)
                if os.waitpid(pid, os.WNOHANG | WALL)[0] == pid:
                    reaped += 1
            except ChildProcessError:
                pass
            self._first_seen.pop(pid, None)
        return reaped

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                self.sweep()
            except Exception:
                log.exception("reaper sweep failed")

    def start(self) -> None:
        become_subreaper()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def stop(self) -> None:
        if self._task:
            self._task.cancel()
