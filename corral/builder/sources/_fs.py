"""Small file-system helpers of the image sources."""
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time


def empty_dir(d: str) -> None:
    """Remove what a failed run left in `d` (the directory itself stays, as the builder made it)."""
    if not os.path.isdir(d):
        return
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.unlink(p)


class WorkDir:
    """A scratch directory in the cache, locked while in use; scratch directories a killed build left
    behind (their lock free) are removed when the next one is made."""

    def __init__(self, parent: str, prefix: str):
        os.makedirs(parent, exist_ok=True)
        _remove_stale(parent, prefix)
        self.path = tempfile.mkdtemp(prefix=prefix, dir=parent)
        self._lock = open(os.path.join(self.path, ".lock"), "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()

    def __enter__(self) -> "WorkDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _remove_stale(parent: str, prefix: str) -> None:
    for name in os.listdir(parent):
        path = os.path.join(parent, name)
        if not name.startswith(prefix) or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            fd = os.open(os.path.join(path, ".lock"), os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if time.time() - os.lstat(path).st_mtime > 300:   # never locked (killed at once), or just made
                shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue    # a build running now
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
