"""Reaping orphans. PID 1 on these hosts does not reap, so corrald is a child subreaper:
orphaned descendants (liblxc monitors, exec'd processes whose parent died) become its children.

Children that corrald itself waits for (asyncio subprocesses, exec) are reaped by their owners
at once; a zombie child still unreaped on the next sweep has no owner, and the reaper takes it.
"""
from __future__ import annotations

import asyncio
import ctypes
import glob
import logging
import os

log = logging.getLogger(__name__)
PR_SET_CHILD_SUBREAPER = 36
SWEEP_SECONDS = 1.0


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: %s", os.strerror(ctypes.get_errno()))


def _zombie_children() -> set[int]:
    pids: set[int] = set()
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        try:
            with open(path) as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    zombies = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == "Z":
            zombies.add(pid)
    return zombies


class Reaper:
    def __init__(self):
        self._seen: set[int] = set()
        self._task: asyncio.Task | None = None

    def sweep(self) -> int:
        zombies = _zombie_children()
        reaped = 0
        for pid in zombies & self._seen:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped += 1
            except ChildProcessError:
                pass
        self._seen = zombies - self._seen
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
