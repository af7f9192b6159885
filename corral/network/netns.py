"""Running a function inside another process's network namespace.

setns() changes the calling thread only, so the work happens on a throwaway thread that enters
/proc/PID/ns/net and never returns to a pool. Sockets made there stay in that namespace after
the thread ends, which is how proxy devices listen or connect inside a container from the
daemon's own event loop.
"""
from __future__ import annotations

import os
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def run_in_netns(pid: int, fn: Callable[[], T]) -> T:
    """fn() inside the network namespace of `pid` (blocking; call from a worker thread)."""
    result: list = []

    def worker() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        except OSError as e:
            os.close(own)
            result.append(e)
            return
        try:
            os.setns(target, os.CLONE_NEWNET)
            try:
                result.append(fn())
            finally:
                os.setns(own, os.CLONE_NEWNET)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            result.append(e)
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=worker, name=f"netns-{pid}")
    t.start()
    t.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def netns_inode(pid: int | str = "self") -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino
