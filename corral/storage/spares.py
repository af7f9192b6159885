"""Ready copies of image volumes (dir pools): the copy an instance made from an image needs, made
in the background before it is asked for, so that `lxc launch` does not wait for it.

On a filesystem without reflinks, the `dir` driver copies the image's whole tree for each new
instance (as LXD's does with rsync); on a busy disk that is the largest part of a launch. Instead,
after an instance volume was made from an image, the next copy is made in the background (DELAY later),
in `<pool>/.spares/<fingerprint>` (through `<fingerprint>.partial`, renamed when whole), and the
next instance volume from that image is that copy, renamed into place (the same filesystem: one
atomic rename; two creations never get the same copy, the second makes its own as before).

The copy is exactly what a direct copy would be (same `_copy`, taken from an image volume that never
changes once unpacked); the instance volume's mode is set when it is taken. Deleting the image
volume (or the pool) deletes its copy, under a lock the background copy holds, so no copy outlives
its image. The start-up reconciliation removes half-made copies and copies of unknown images
(`reconcile_spares`): they are a cache, not user data, so they are not reported as warnings.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time

from corral.storage.drivers.base import PARTIAL
from corral.storage.volume import IMAGE, Volume

log = logging.getLogger(__name__)

DIRNAME = ".spares"
_FP = re.compile(r"^[0-9a-f]{64}$")
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock(path: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


def spares_dir(pool_path: str) -> str:
    return os.path.join(pool_path, DIRNAME)


def spare_path(pool_path: str, fingerprint: str) -> str:
    return os.path.join(spares_dir(pool_path), fingerprint)


def take(driver, fingerprint: str, dst: str) -> bool:
    """Rename the ready copy of image `fingerprint` to `dst` (which must not exist; its parent
    does). False when there is none (being made, or taken by another creation)."""
    try:
        os.rename(spare_path(driver.path, fingerprint), dst)
    except FileNotFoundError:
        return False
    return True


DELAY = 0.2   # seconds: the copy starts after the rest of the creation (and a start right after it)


def refill(driver, fingerprint: str, image_path: str, delay: float = DELAY) -> threading.Thread:
    """Make the next ready copy of the image in the background (nothing when one is there), after
    `delay`: the copy's disk writes do not slow the launch that took the last one."""
    # Not a daemon thread: a daemon that exits waits for the copy rather than leave its `cp` behind.
    t = threading.Thread(target=_refill, args=(driver, fingerprint, image_path, delay), daemon=False,
                         name=f"spare-{fingerprint[:12]}")
    t.start()
    return t


def _refill(driver, fingerprint: str, image_path: str, delay: float) -> None:
    time.sleep(delay)
    spare = spare_path(driver.path, fingerprint)
    with _lock(spare):
        try:
            if os.path.lexists(spare) or not os.path.isdir(os.path.join(image_path, "rootfs")):
                return   # there already, or the image volume is gone (deleted while we waited)
            os.makedirs(spares_dir(driver.path), mode=driver.kind_mode, exist_ok=True)
            driver._copy(image_path, spare)   # via <spare>.partial: never half-made under its name
        except Exception:  # noqa: BLE001 - only a cache: the next creation copies the image itself
            log.warning("could not make a ready copy of image %s in pool %s", fingerprint, driver.pool,
                        exc_info=True)


def drop(driver, fingerprint: str) -> None:
    """Delete the image's ready copy (and a half-made one), waiting for a copy being made."""
    spare = spare_path(driver.path, fingerprint)
    with _lock(spare):
        for p in (spare, spare + PARTIAL):
            driver._delete(p)


def drop_all(driver) -> None:
    top = spares_dir(driver.path)
    for e in _ls(top):
        drop(driver, e[:-len(PARTIAL)] if e.endswith(PARTIAL) else e)
    if os.path.isdir(top) and not os.listdir(top):
        os.rmdir(top)


def reconcile_spares(driver, fingerprints: set[str]) -> None:
    """At start-up: keep the whole copies of known images, remove anything else (half-made copies
    left by a crash, copies of images deleted meanwhile)."""
    top = spares_dir(driver.path)
    for e in _ls(top):
        image = driver.volume_path(Volume(driver.pool, e, IMAGE)) if _FP.match(e) else ""
        if not (e in fingerprints and os.path.isdir(os.path.join(image, "rootfs"))):
            try:
                driver.remove_leftover(os.path.join(top, e))
            except OSError:   # e.g. a killed daemon's `cp` still writing it: the next start removes it
                log.warning("could not remove %s from pool %s", os.path.join(top, e), driver.pool, exc_info=True)


def _ls(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
