"""Shifting a volume's file ownership from one idmap to another (LXD's volume shifting).

A custom volume attached to an unprivileged container without `security.shifted` has its files
chowned so that the container's root owns them (host uid = the map's base), exactly as LXD does.
`None` means the identity map (privileged containers, or a volume never attached).
"""
from __future__ import annotations

import os
import stat

from corral.idmap import IdmapEntry


def _to_ns(host: int, entries: list[IdmapEntry] | None, uid: bool) -> int | None:
    if not entries:
        return host
    for e in entries:
        if (e.isuid if uid else e.isgid) and e.hostid <= host < e.hostid + e.maprange:
            return host - e.hostid + e.nsid
    return None


def _to_host(ns: int, entries: list[IdmapEntry] | None, uid: bool) -> int | None:
    if not entries:
        return ns
    for e in entries:
        if (e.isuid if uid else e.isgid) and e.nsid <= ns < e.nsid + e.maprange:
            return ns - e.nsid + e.hostid
    return None


def shift_id(host: int, old: list[IdmapEntry] | None, new: list[IdmapEntry] | None, uid: bool) -> int:
    """The host id a file owned by `host` under `old` gets under `new` (unmapped ids stay)."""
    ns = _to_ns(host, old, uid)
    if ns is None:
        return host
    out = _to_host(ns, new, uid)
    return host if out is None else out


def shift_tree(path: str, old: list[IdmapEntry] | None, new: list[IdmapEntry] | None) -> int:
    """Chown every entry under `path` (not following symlinks); returns how many changed."""
    if (old or []) == (new or []):
        return 0
    changed = 0

    def one(p: str) -> None:
        nonlocal changed
        st = os.lstat(p)
        uid, gid = shift_id(st.st_uid, old, new, True), shift_id(st.st_gid, old, new, False)
        if (uid, gid) != (st.st_uid, st.st_gid):
            os.lchown(p, uid, gid)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6000:
                os.chmod(p, stat.S_IMODE(st.st_mode))  # chown clears setuid/setgid bits
            changed += 1

    one(path)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            one(os.path.join(root, n))
    return changed
