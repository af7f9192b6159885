"""Mount into (or unmount from) a running container's mount namespace: disk hot-plug.

Run as a separate single-threaded process (setns into a mount namespace refuses threaded callers):

    python -m corral.storage.nsmount add PID SOURCE TARGET [ro] [idmap] [recursive]
    python -m corral.storage.nsmount remove PID TARGET

`add` clones SOURCE on the host with open_tree(OPEN_TREE_CLONE), optionally makes it read-only and
idmapped to the container's user namespace (mount_setattr), joins the container's mount namespace,
creates TARGET there as the container's root, and attaches the clone with move_mount.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE, AT_RECURSIVE, AT_EMPTY_PATH, AT_FDCWD = 1, 0x8000, 0x1000, -100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY, MOUNT_ATTR_IDMAP = 0x1, 0x00100000
MNT_DETACH = 2
CLONE_NEWNS = 0x00020000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _root_ids(pid: int) -> tuple[int, int]:
    """The host uid and gid of the container's root (0, 0 when privileged)."""
    out = []
    for f in ("uid_map", "gid_map"):
        host = 0
        with open(f"/proc/{pid}/{f}") as fh:
            for line in fh:
                ns, h, _n = (int(x) for x in line.split())
                if ns == 0:
                    host = h
        out.append(host)
    return out[0], out[1]


def add(pid: int, source: str, target: str, ro: bool, idmap: bool, recursive: bool) -> None:
    flags = OPEN_TREE_CLONE | os.O_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    fd = _check(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, source.encode(), flags), f"open_tree {source}")
    attr = _MountAttr()
    if ro:
        attr.attr_set |= MOUNT_ATTR_RDONLY
    userns = -1
    if idmap:
        userns = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        attr.attr_set |= MOUNT_ATTR_IDMAP
        attr.userns_fd = userns
    if attr.attr_set:
        _check(_libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0),
                             ctypes.byref(attr), ctypes.sizeof(attr)), "mount_setattr")
    is_dir = os.path.isdir(source)
    uid, gid = _root_ids(pid)
    mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    os.setns(mnt, CLONE_NEWNS)
    # Create the mount point as the container's root (the root filesystem may be idmapped).
    _libc.setfsgid(gid)
    _libc.setfsuid(uid)
    try:
        if is_dir:
            os.makedirs(target, mode=0o755, exist_ok=True)
        elif not os.path.exists(target):
            os.makedirs(os.path.dirname(target) or "/", mode=0o755, exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    finally:
        _libc.setfsuid(0)
        _libc.setfsgid(0)
    _check(_libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH),
           f"move_mount to {target}")


def remove(pid: int, target: str) -> None:
    mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    os.setns(mnt, CLONE_NEWNS)
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def run(*args: str) -> None:
    """Run this module as a helper process; raises OSError with its message on failure."""
    res = subprocess.run([sys.executable, "-m", "corral.storage.nsmount", *args], capture_output=True, text=True)
    if res.returncode != 0:
        lines = res.stderr.strip().splitlines()
        raise OSError(lines[-1] if lines else f"nsmount exited with {res.returncode}")


def main(argv: list[str]) -> int:
    try:
        if argv[0] == "add":
            pid, source, target, *opts = argv[1:]
            add(int(pid), source, target, "ro" in opts, "idmap" in opts, "recursive" in opts)
        elif argv[0] == "remove":
            remove(int(argv[1]), argv[2])
        else:
            raise ValueError(f"unknown action {argv[0]}")
    except (OSError, ValueError) as e:
        print(f"{e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
