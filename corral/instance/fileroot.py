"""Resolving paths inside a container's root filesystem, for corral/instance/files.py.

The rootfs is a plain host directory whose contents the container controls, and the daemon runs
as root, so every path is resolved *inside* the rootfs with openat2(2) and RESOLVE_IN_ROOT: `..`
and absolute symlinks are clamped to the rootfs, so a planted `/etc/x -> /` or `../../..` can
never lead outside it. Here: the errors (LXD's statuses), path and id validation, the in-root
lookups and the stat results. All functions are blocking."""
from __future__ import annotations

import ctypes
import errno
import os
import stat as statmod
from dataclasses import dataclass
from typing import IO, Any

from corral.errors import CorralError

CHUNK = 1 << 20
PATH_MAX = 4096
MAX_SYMLINK_HOPS = 40
DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o750      # LXD's default for directories created through the API
_ID_MAX = 0xFFFFFFFE          # (uid_t)-1 is "no change" for chown

# openat2(2)
_SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class FileError(CorralError):
    """A file API failure; .status is the HTTP status, .path the container path involved."""
    status = 400

    def __init__(self, message: str, status: int | None = None, path: str | None = None,
                 errno_: int | None = None):
        super().__init__(message, status)
        self.path = path
        self.errno = errno_


@dataclass(frozen=True)
class FileInfo:
    type: str          # "file" | "directory" | "symlink"
    uid: int
    gid: int
    mode: int          # permission bits, S_IMODE (LXD's X-LXD-mode header shows mode & 0o777)
    size: int
    mtime: float = 0.0


@dataclass
class Entry:
    """Result of get(): exactly one of file / entries / target is set, matching info.type."""
    info: FileInfo
    file: IO[bytes] | None = None       # regular file, opened for reading; caller closes it
    entries: list[str] | None = None    # directory entry names
    target: str | None = None           # symlink target, verbatim


# --------------------------------------------------------------------------------------------
# errors and validation

NOT_FOUND = "not found"


def oserror(e: OSError, path: str, what: str) -> FileError:
    code = e.errno
    if code in (errno.ENOENT, errno.ENOTDIR):
        return FileError(NOT_FOUND, 404, path, code)
    if code in (errno.EACCES, errno.EPERM):
        return FileError("forbidden", 403, path, code)
    reason = os.strerror(code).lower() if code else str(e)
    if code in (errno.EEXIST, errno.EISDIR, errno.ENOTEMPTY, errno.ELOOP, errno.EINVAL,
                errno.ENAMETOOLONG, errno.EXDEV, errno.EBUSY, errno.EROFS, errno.EMLINK):
        return FileError(f"Failed to {what} {path!r}: {reason}", 400, path, code)
    return FileError(f"Failed to {what} {path!r}: {reason}", 500, path, code)


def clean_path(path: str) -> str:
    """Validate and lexically clean a container path: absolute, no NUL, no "." / ".." / "//"."""
    if not isinstance(path, str):
        raise FileError("Invalid path: must be a string", 400)
    if path == "":
        raise FileError("Missing path argument", 400)
    if "\x00" in path:
        raise FileError("Invalid path: contains a NUL byte", 400)
    if len(path.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise FileError("Invalid path: too long", 400)
    if not path.startswith("/"):
        path = "/" + path           # as LXD does
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        if len(part.encode("utf-8", "surrogateescape")) > 255:
            raise FileError("Invalid path: component too long", 400)
        parts.append(part)
    return "/" + "/".join(parts)


def split(cpath: str) -> tuple[str, str]:
    """Cleaned container path -> (parent relative to the rootfs, final name); ("", "") for "/"."""
    if cpath == "/":
        return "", ""
    parent, name = cpath.rsplit("/", 1)
    return parent.lstrip("/") or ".", name


def check_id(value: Any, what: str) -> int | None:
    if value is None or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _ID_MAX:
        raise FileError(f"Invalid {what}: {value!r}", 400)
    return value


def check_mode(value: Any) -> int | None:
    if value is None or value == -1:
        return None
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            raise FileError(f"Invalid mode: {value!r}", 400) from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise FileError(f"Invalid mode: {value!r}", 400)
    return value


# --------------------------------------------------------------------------------------------
# resolution inside the rootfs

def openat2(dirfd: int, path: str, flags: int, resolve: int = _RESOLVE) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    raw = os.fsencode(path)
    for _ in range(16):
        fd = _syscall(_SYS_OPENAT2, ctypes.c_int(dirfd), ctypes.c_char_p(raw), ctypes.byref(how),
                      ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EINTR):   # a concurrent rename/mount: retry
            continue
        if err == errno.ENOSYS:
            raise CorralError("openat2(2) is not supported by this kernel (Linux >= 5.6 needed)", 500)
        raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


class Root:
    """An O_PATH fd on the rootfs, used as the root for every lookup."""

    def __init__(self, rootfs: str | os.PathLike[str]):
        try:
            self.fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise FileError(f"Instance root filesystem unavailable: {os.strerror(e.errno or 0)}",
                            500, None, e.errno) from None

    def __enter__(self) -> "Root":
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def dir(self, rel: str) -> int:
        """O_PATH fd of directory `rel` (relative to the rootfs), resolved in-root."""
        if rel in ("", "."):
            return os.dup(self.fd)
        return openat2(self.fd, rel, os.O_PATH | os.O_DIRECTORY)


def reopen(fd: int, flags: int) -> int:
    """Reopen the inode behind an O_PATH fd (same inode, no path lookup in the rootfs)."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC | os.O_NOCTTY)


def kind(mode: int) -> str:
    if statmod.S_ISDIR(mode):
        return "directory"
    if statmod.S_ISLNK(mode):
        return "symlink"
    return "file"


def info_of(st: os.stat_result) -> FileInfo:
    return FileInfo(kind(st.st_mode), st.st_uid, st.st_gid, statmod.S_IMODE(st.st_mode),
                    st.st_size, st.st_mtime)


def open_final(root: Root, cpath: str) -> int:
    """O_PATH|O_NOFOLLOW fd of the final component itself (a symlink is not followed)."""
    parent, name = split(cpath)
    if not name:
        return os.dup(root.fd)
    pfd = root.dir(parent)
    try:
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    finally:
        os.close(pfd)
