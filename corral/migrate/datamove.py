"""Moving LXD's data directory over to Corral's by renames, rewriting the paths inside, and undoing it.

Every change is recorded in a `Journal` as it is made; `Journal.undo()` reverts them newest first
(the rollback). What moves: the entries of MOVED that exist. What stays in LXD's directory: its
database (untouched, so LXD can start again), unix.socket, security/, cache/; LXD's runtime tmpfs
mounts (devlxd, shmounts) and its pool mounts are unmounted first. server.crt/server.key are copied
(the same identity: clients keep trusting the server; LXD keeps its own).
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess

log = logging.getLogger(__name__)

MOVED = ("containers", "snapshots", "storage-pools", "disks", "images", "networks", "logs", "backups",
         "devices", "virtual-machines", "virtual-machines-snapshots")
COPIED = ("server.crt", "server.key", "cluster.crt", "cluster.key")
LINK_DIRS = ("containers", "snapshots", "virtual-machines", "virtual-machines-snapshots")
# Text files that may hold the data directory's path: liblxc configs and backup.yaml
REWRITTEN_GLOBS = (("logs", "lxc.conf"), ("storage-pools", "backup.yaml"))


class Journal:
    def __init__(self):
        self.done: list[tuple[str, callable]] = []

    def add(self, what: str, undo) -> None:
        self.done.append((what, undo))

    def undo(self) -> list[str]:
        """Revert newest first; return what was reverted (and what could not be)."""
        out = []
        while self.done:
            what, fn = self.done.pop()
            try:
                fn()
                out.append(f"undone: {what}")
            except Exception as e:   # keep going: revert as much as possible, say what failed
                out.append(f"FAILED to undo {what}: {e}")
        return out


def mounts_under(path: str) -> list[str]:
    path = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            t = line.split()[4].replace("\\040", " ")
            if t == path or t.startswith(path + "/"):
                out.append(t)
    return sorted(out, key=len, reverse=True)


def unmount_all(path: str) -> list[str]:
    """Unmount everything at or below `path`, deepest first (loop devices of loop mounts are freed)."""
    done = []
    for t in mounts_under(path):
        r = subprocess.run(["umount", t], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(["umount", "-l", t], capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError(f"cannot unmount {t}: {r.stderr.strip()}")
        done.append(t)
    return done


def _rename(journal: Journal, src: str, dst: str) -> None:
    os.rename(src, dst)
    journal.add(f"rename {src} -> {dst}", lambda: os.rename(dst, src))


def move_data(journal: Journal, lxd_dir: str, corral_dir: str) -> list[str]:
    """Create corral_dir, rename LXD's data into it, copy the server certificate. Returns what moved."""
    if not os.path.exists(corral_dir):
        os.mkdir(corral_dir, 0o711)
        journal.add(f"create {corral_dir}", lambda: shutil.rmtree(corral_dir))
    moved = []
    for name in MOVED:
        src = os.path.join(lxd_dir, name)
        if os.path.lexists(src):
            _rename(journal, src, os.path.join(corral_dir, name))
            moved.append(name)
    for name in COPIED:
        src = os.path.join(lxd_dir, name)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(corral_dir, name))
    return moved


def _relink(path: str, old: str, new: str) -> bool:
    target = os.readlink(path)
    if target != old and not target.startswith(old + "/"):
        return False
    tmp = path + ".migrate-new"
    os.symlink(new + target[len(old):], tmp)
    os.replace(tmp, path)
    return True


def rewrite_links(journal: Journal, base: str, old: str, new: str) -> int:
    """Point the containers/, snapshots/ ... links under `base` from `old`'s storage-pools/ to `new`'s."""
    n = 0
    for d in LINK_DIRS:
        top = os.path.join(base, d)
        for entry in sorted(os.listdir(top)) if os.path.isdir(top) else []:
            p = os.path.join(top, entry)
            if os.path.islink(p) and _relink(p, old, new):
                journal.add(f"relink {p}", lambda p=p: _relink(p, new, old))
                n += 1
    return n


def _rewrite_file(path: str, old: str, new: str) -> bool:
    with open(path, "rb") as f:
        data = f.read()
    o, n = old.encode() + b"/", new.encode() + b"/"
    if o not in data:
        return False
    st = os.stat(path)
    tmp = path + ".migrate-new"
    with open(tmp, "wb") as f:
        f.write(data.replace(o, n))
    os.chmod(tmp, st.st_mode & 0o7777)
    os.replace(tmp, path)
    return True


def rewrite_files(journal: Journal, base: str, old: str, new: str) -> int:
    """liblxc configs (logs/<name>/lxc.conf) and backup.yaml files under `base` naming `old`."""
    n = 0
    for top, fname in REWRITTEN_GLOBS:
        root = os.path.join(base, top)
        depth = 1 if top == "logs" else 3   # logs/<name>/lxc.conf, storage-pools/<pool>/<kind>/<name>/backup.yaml
        for dirpath, dirs, files in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            level = 0 if rel == "." else rel.count(os.sep) + 1
            if level >= depth:
                dirs[:] = []
            if fname in files and level == depth:
                p = os.path.join(dirpath, fname)
                if _rewrite_file(p, old, new):
                    journal.add(f"rewrite {p}", lambda p=p: _rewrite_file(p, new, old))
                    n += 1
    return n


def read_files(root: str) -> dict[str, tuple[bytes, int]]:
    """The small files under `root` (networks/: dnsmasq.pid in LXD's YAML, leases, host entries)."""
    saved: dict[str, tuple[bytes, int]] = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    saved[os.path.relpath(p, root)] = (fh.read(), os.stat(p).st_mode & 0o7777)
    return saved


def restore_files(root: str, saved: dict[str, tuple[bytes, int]]) -> None:
    """Put the files read by read_files() back and remove the ones added since (corrald writes its own)."""
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.relpath(p, root) not in saved:
                os.unlink(p)
    for rel, (data, mode) in saved.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(data)
        os.chmod(p, mode)


def preserve_files(journal: Journal, root: str) -> dict[str, tuple[bytes, int]]:
    saved = read_files(root)
    journal.add(f"keep the files under {root}", lambda: restore_files(root, saved))
    return saved


def record_modes(pools_dir: str) -> dict[str, tuple[int, int, int]]:
    """Mode and owner of each pool's volume-kind directories and volume directories, as LXD keeps them
    (relative to storage-pools/; read while LXD still has its pools mounted). Corral tightens them."""
    out = {}
    for pool in sorted(os.listdir(pools_dir)) if os.path.isdir(pools_dir) else []:
        for rel in [pool] + [os.path.join(pool, k) for k in sorted(os.listdir(os.path.join(pools_dir, pool)))]:
            p = os.path.join(pools_dir, rel)
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


def restore_modes(pools_dir: str, modes: dict[str, tuple[int, int, int]], loop_sources: dict[str, str]) -> int:
    """Put the recorded modes back; a loop-backed pool not mounted now is mounted for it meanwhile."""
    mounted = []
    try:
        for pool, source in loop_sources.items():
            target = os.path.join(pools_dir, pool)
            if os.path.exists(source) and os.path.isdir(target) and not os.path.ismount(target):
                r = subprocess.run(["mount", "-o", "loop", source, target], capture_output=True, text=True)
                if r.returncode != 0:
                    raise OSError(f"cannot mount {source}: {r.stderr.strip()}")
                mounted.append(target)
        n = 0
        for rel, (mode, uid, gid) in modes.items():
            p = os.path.join(pools_dir, rel)
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
