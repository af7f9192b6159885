"""Moving LXD's data directory over to Corral's by renames, rewriting the paths inside, and undoing it.

Every change is recorded in a `Journal` as it is made; `Journal.undo()` reverts them newest first
(the rollback). What moves: the entries of MOVED that exist. What stays in LXD's directory: its
database (untouched, so LXD can start again), unix.socket, security/, cache/; LXD's runtime tmpfs
mounts (devlxd, shmounts) and its pool mounts are unmounted first. server.crt/server.key are copied
(the same identity: clients keep trusting the server; LXD keeps its own).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess

from corral.storage import lxd_takeover

log = logging.getLogger(__name__)

MOVED = ("containers", "snapshots", "storage-pools", "disks", "images", "networks", "logs", "backups",
         "devices", "virtual-machines", "virtual-machines-snapshots")
COPIED = ("server.crt", "server.key", "cluster.crt", "cluster.key")
LINK_DIRS = ("containers", "snapshots", "virtual-machines", "virtual-machines-snapshots")
# Text files that may hold the data directory's path: liblxc configs (the pools' backup.yaml files are
# corral/storage/lxd_takeover.py's)


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
    """liblxc configs (logs/<name>/lxc.conf) and the volumes' backup.yaml files under `base` naming `old`."""
    n = 0
    logs = os.path.join(base, "logs")
    paths = [os.path.join(logs, d, "lxc.conf") for d in sorted(os.listdir(logs))] if os.path.isdir(logs) else []
    for p in [p for p in paths if os.path.isfile(p)] + lxd_takeover.backup_yaml_files(base):
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
