"""What `corral migrate-from-lxd` (corral/migrate/) needs to know of the pools' tree on disk, LXD 5.0's
layout which Corral shares: `<data dir>/storage-pools/<pool>/<kind>/<volume>`. The migration runs
with no daemon and no Pool objects (LXD's pools are not Corral's yet, or no longer), so it reads the
tree here: the volumes' backup.yaml files, and the modes and owners of the volume-kind and volume
directories (Corral keeps them tighter than LXD, storage/perms.py: going back puts LXD's back)."""
from __future__ import annotations

import errno
import os
import subprocess

POOLS = "storage-pools"


def pools_dir(data_dir: str) -> str:
    return os.path.join(data_dir, POOLS)


def _dirs(path: str) -> list[str]:
    try:
        return sorted(e for e in os.listdir(path) if os.path.isdir(os.path.join(path, e))
                      and not os.path.islink(os.path.join(path, e)))
    except (FileNotFoundError, NotADirectoryError):
        return []


def backup_yaml_files(data_dir: str) -> list[str]:
    """<pool>/<kind>/<volume>/backup.yaml of every mounted (or plain directory) pool."""
    root = pools_dir(data_dir)
    out = []
    for pool in _dirs(root):
        for kind in _dirs(os.path.join(root, pool)):
            for vol in _dirs(os.path.join(root, pool, kind)):
                p = os.path.join(root, pool, kind, vol, "backup.yaml")
                if os.path.isfile(p):
                    out.append(p)
    return out


def record_modes(data_dir: str) -> dict[str, tuple[int, int, int]]:
    """Mode and owner of each pool's volume-kind directories and volume directories, as LXD keeps them
    (relative to storage-pools/; read while LXD still has its pools mounted). Corral tightens them."""
    root = pools_dir(data_dir)
    out = {}
    for pool in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for rel in [pool] + [os.path.join(pool, k) for k in sorted(os.listdir(os.path.join(root, pool)))]:
            p = os.path.join(root, rel)
            if not os.path.isdir(p) or os.path.islink(p):
                continue
            st = os.lstat(p)
            out[rel] = (st.st_mode & 0o7777, st.st_uid, st.st_gid)
            if rel != pool:
                for vol in sorted(os.listdir(p)):
                    v = os.path.join(p, vol)
                    if os.path.isdir(v) and not os.path.islink(v):
                        st = os.lstat(v)
                        out[os.path.join(rel, vol)] = (st.st_mode & 0o7777, st.st_uid, st.st_gid)
    return out


def restore_modes(data_dir: str, modes: dict[str, tuple[int, int, int]], loop_sources: dict[str, str]) -> int:
    """Put the recorded modes back; a loop-backed pool not mounted now is mounted for it meanwhile."""
    root = pools_dir(data_dir)
    mounted = []
    try:
        for pool, source in loop_sources.items():
            target = os.path.join(root, pool)
            if os.path.exists(source) and os.path.isdir(target) and not os.path.ismount(target):
                r = subprocess.run(["mount", "-o", "loop", source, target], capture_output=True, text=True)
                if r.returncode != 0:
                    raise OSError(f"cannot mount {source}: {r.stderr.strip()}")
                mounted.append(target)
        n = 0
        for rel, (mode, uid, gid) in modes.items():
            p = os.path.join(root, rel)
            if os.path.isdir(p) and not os.path.islink(p):
                st = os.lstat(p)
                if (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, gid):
                    continue
                try:
                    os.chown(p, uid, gid)
                    os.chmod(p, mode)
                except OSError as e:
                    if e.errno != errno.EROFS:   # read-only subvolumes (btrfs images) were not changed
                        raise
                    continue
                n += 1
        return n
    finally:
        for t in mounted:
            subprocess.run(["umount", t], capture_output=True)
