"""Files inside a container's root filesystem, for the /1.0/instances/NAME/files API.

The rootfs is a plain host directory whose contents the container controls, and the daemon runs
as root, so every path is resolved *inside* the rootfs with openat2(2) and RESOLVE_IN_ROOT: `..`
and absolute symlinks are clamped to the rootfs, so a planted `/etc/x -> /` or `../../..` can
never lead outside it. Each operation resolves the parent directory that way into an O_PATH fd
and then acts on the final component with *at() calls relative to that fd, with O_NOFOLLOW (or
the *at() call's own no-follow semantics) wherever the final component must not be followed.
Nothing here uses realpath-then-open.

uid/gid are the container's ids and are written to disk unchanged (the container sees the rootfs
through an idmapped mount).

Behaviour follows LXD 5.0 (lxd/instance_file.go, which goes through an SFTP server running in
the container):
  - a missing path is 404 "not found"; permission problems are 403 "forbidden";
  - paths are cleaned lexically ("//", "/./", "..") and a relative path gets a leading "/";
  - overwriting an existing file keeps its owner and mode (LXD only applies uid/gid/mode when it
    creates the file) unless `force_attrs=True`; the new content is written to a temporary file
    in the same directory and renamed over the old one;
  - append mode needs an existing file (LXD opens it without O_CREAT) and leaves owner/mode alone;
  - writing to a path whose final component is a symlink writes to the symlink's target, the
    way the in-container SFTP server would, but the target is resolved inside the rootfs too;
  - creating a directory that already exists is a success (no mode/owner change); a new
    directory defaults to mode 0750, a new file to 0644, owner 0:0;
  - creating a symlink that already exists with the same target is a success.

All functions are blocking: call them from a worker thread.
"""
from __future__ import annotations

import errno
import os
import posixpath
import secrets
import stat as statmod
from collections.abc import Iterator
from typing import IO, Any

from corral.fdio import write_all
from corral.instance.fileroot import (CHUNK, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, MAX_SYMLINK_HOPS, PATH_MAX,
                                      Entry, FileError, FileInfo, Root, check_id, check_mode, clean_path,
                                      info_of, openat2, oserror, open_final, reopen, split)

__all__ = [
    "FileError", "FileInfo", "Entry", "clean_path", "stat", "get", "read_file", "iter_chunks",
    "list_dir", "read_link", "absolute_target", "write_file", "make_dir", "mkdir_parents", "make_symlink",
    "delete",
]


# --------------------------------------------------------------------------------------------
# reading

def stat(rootfs: str, path: str) -> FileInfo:
    """lstat() of a container path: a final symlink is reported as a symlink."""
    cpath = clean_path(path)
    with Root(rootfs) as root:
        try:
            fd = open_final(root, cpath)
        except OSError as e:
            raise oserror(e, cpath, "stat") from None
        try:
            return info_of(os.fstat(fd))
        finally:
            os.close(fd)


def _entry(fd: int, cpath: str) -> Entry:
    st = os.fstat(fd)
    info = info_of(st)
    if info.type == "symlink":
        return Entry(info, target=os.readlink("", dir_fd=fd))
    if info.type == "directory":
        dfd = reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return Entry(info, entries=sorted(os.listdir(dfd)))
        finally:
            os.close(dfd)
    if not statmod.S_ISREG(st.st_mode):
        raise FileError(f"Failed to read {cpath!r}: not a regular file", 400, cpath)
    rfd = reopen(fd, os.O_RDONLY)
    try:
        return Entry(info, file=open(rfd, "rb", buffering=CHUNK))
    except BaseException:
        os.close(rfd)
        raise


def get(rootfs: str, path: str) -> Entry:
    """One race-free lookup for GET: lstat, then the content matching what was found."""
    cpath = clean_path(path)
    with Root(rootfs) as root:
        try:
            fd = open_final(root, cpath)
            try:
                return _entry(fd, cpath)
            finally:
                os.close(fd)
        except OSError as e:
            raise oserror(e, cpath, "read") from None


def read_file(rootfs: str, path: str) -> tuple[FileInfo, IO[bytes]]:
    """Open a regular file: (info, binary file object). The caller must close the file object."""
    entry = get(rootfs, path)
    if entry.file is None:
        cpath = clean_path(path)
        raise FileError(f"Failed to read {cpath!r}: is a {entry.info.type}", 400, cpath)
    return entry.info, entry.file


def iter_chunks(f: IO[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """Read a file object in chunks and close it at the end."""
    with f:
        while chunk := f.read(size):
            yield chunk


def list_dir(rootfs: str, path: str) -> list[str]:
    """Names in a directory (sorted, without "." and ".."); a symlink is not followed."""
    entry = get(rootfs, path)
    if entry.entries is None:
        if entry.file is not None:
            entry.file.close()
        cpath = clean_path(path)
        raise FileError(f"Failed to list {cpath!r}: not a directory", 400, cpath)
    return entry.entries


def read_link(rootfs: str, path: str, absolute: bool = False) -> str:
    """A symlink's target, verbatim; with absolute=True made into a clean container path
    relative to the link's directory, the way LXD reports it (lexically, like its SFTP
    RealPath)."""
    entry = get(rootfs, path)
    if entry.target is None:
        if entry.file is not None:
            entry.file.close()
        cpath = clean_path(path)
        raise FileError(f"Failed to read link {cpath!r}: not a symlink", 400, cpath)
    return absolute_target(path, entry.target) if absolute else entry.target


def absolute_target(path: str, target: str) -> str:
    """A symlink's target as a clean container path, relative to the link's directory."""
    if not target.startswith("/"):
        target = posixpath.join(posixpath.dirname(clean_path(path)), target)
    return clean_path(target)


# --------------------------------------------------------------------------------------------
# writing

def _copy_in(fd: int, data: Any) -> None:
    if data is None:
        return
    if isinstance(data, (bytes, bytearray, memoryview)):
        write_all(fd, data)
        return
    read = getattr(data, "read", None)
    if read is not None:
        while True:
            chunk = read(CHUNK)
            if not chunk:
                return
            if isinstance(chunk, str):
                raise TypeError("file data must be bytes")
            write_all(fd, chunk)
    for chunk in data:
        if isinstance(chunk, str):
            raise TypeError("file data must be bytes")
        if chunk:
            write_all(fd, chunk)


def _follow_final(root: Root, cpath: str) -> tuple[int, str, os.stat_result | None, str]:
    """Resolve the parent of `cpath` and follow a final symlink (in-root) until the final
    component is not a symlink. Returns (parent O_PATH fd, name, lstat or None, shown path)."""
    current = cpath
    for _ in range(MAX_SYMLINK_HOPS):
        if current == "/":
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), cpath)
        parent, name = current.rsplit("/", 1)
        if name in (".", ".."):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), cpath)
        pfd = root.dir(parent.lstrip("/") or ".")
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return pfd, name, None, current
        except BaseException:
            os.close(pfd)
            raise
        if not statmod.S_ISLNK(st.st_mode):
            return pfd, name, st, current
        try:
            target = os.readlink(name, dir_fd=pfd)
        except FileNotFoundError:       # replaced meanwhile: look again
            os.close(pfd)
            continue
        except BaseException:
            os.close(pfd)
            raise
        os.close(pfd)
        if not target:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), cpath)
        # Keep ".." for the kernel to resolve physically (from the link's directory), in-root;
        # only collapse "//" and "/./" and trailing slashes.
        base = target if target.startswith("/") else f"{parent}/{target}"
        parts = [p for p in base.split("/") if p not in ("", ".")]
        if not parts:
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), cpath)
        current = "/" + "/".join(parts)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), cpath)


def write_file(rootfs: str, path: str, data: Any, uid: int | None = None, gid: int | None = None,
               mode: int | str | None = None, append: bool = False,
               force_attrs: bool = False) -> None:
    """Create, overwrite or append to a regular file.

    `data`: bytes, a file-like object with .read(n), or an iterable of bytes chunks.
    uid/gid/mode (None or -1 = not given) apply when the file is created; on overwrite of an
    existing file its owner/mode are kept unless force_attrs is set (LXD keeps them); append
    never changes them. New files default to 0:0 and 0644.
    """
    cpath = clean_path(path)
    uid, gid, mode = check_id(uid, "uid"), check_id(gid, "gid"), check_mode(mode)
    with Root(rootfs) as root:
        try:
            pfd, name, st, _shown = _follow_final(root, cpath)
        except OSError as e:
            raise oserror(e, cpath, "write") from None
        try:
            if st is not None and statmod.S_ISDIR(st.st_mode):
                raise FileError(f"Failed to write {cpath!r}: is a directory", 400, cpath,
                                errno.EISDIR)
            if st is not None and not statmod.S_ISREG(st.st_mode):
                raise FileError(f"Failed to write {cpath!r}: not a regular file", 400, cpath)
            if append:
                _append(pfd, name, cpath, data, uid, gid, mode, force_attrs)
            else:
                _replace(pfd, name, st, data, uid, gid, mode, force_attrs)
        except OSError as e:
            raise oserror(e, cpath, "write") from None
        finally:
            os.close(pfd)


def _set_attrs(fd: int, uid: int | None, gid: int | None, mode: int | None) -> None:
    if uid is not None or gid is not None:
        os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
    if mode is not None:
        os.fchmod(fd, mode)     # after chown, which clears setuid/setgid


def _append(pfd: int, name: str, cpath: str, data: Any, uid: int | None, gid: int | None,
            mode: int | None, force_attrs: bool) -> None:
    opfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    try:
        if not statmod.S_ISREG(os.fstat(opfd).st_mode):
            raise FileError(f"Failed to write {cpath!r}: not a regular file", 400, cpath)
        fd = reopen(opfd, os.O_WRONLY | os.O_APPEND)
    finally:
        os.close(opfd)
    try:
        _copy_in(fd, data)
        if force_attrs:
            _set_attrs(fd, uid, gid, mode)
    finally:
        os.close(fd)


def _replace(pfd: int, name: str, st: os.stat_result | None, data: Any, uid: int | None,
             gid: int | None, mode: int | None, force_attrs: bool) -> None:
    if st is not None:
        # Existing file: keep its owner and mode unless told otherwise.
        e_uid, e_gid, e_mode = st.st_uid, st.st_gid, statmod.S_IMODE(st.st_mode)
        if force_attrs:
            uid = e_uid if uid is None else uid
            gid = e_gid if gid is None else gid
            mode = e_mode if mode is None else mode
        else:
            uid, gid, mode = e_uid, e_gid, e_mode
    else:
        uid = 0 if uid is None else uid
        gid = 0 if gid is None else gid
        mode = DEFAULT_FILE_MODE if mode is None else mode
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(8):
        tmp = f".{name[:200]}.corral-{secrets.token_hex(6)}"
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=pfd)
            break
        except FileExistsError:
            continue
    else:
        raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), name)
    done = False
    try:
        try:
            _copy_in(fd, data)
            _set_attrs(fd, uid, gid, mode)
        finally:
            os.close(fd)
        # rename(2) replaces the final component itself, never what it might point to.
        os.rename(tmp, name, src_dir_fd=pfd, dst_dir_fd=pfd)
        done = True
    finally:
        if not done:
            try:
                os.unlink(tmp, dir_fd=pfd)
            except OSError:
                pass


def _is_dir_in_root(root: Root, cpath: str) -> bool:
    """Whether cpath (following symlinks, in-root) is a directory."""
    try:
        fd = openat2(root.fd, cpath.lstrip("/") or ".", os.O_PATH)
    except OSError:
        return False
    try:
        return statmod.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _mkdir_at(pfd: int, name: str, uid: int, gid: int, mode: int) -> None:
    os.mkdir(name, 0o700, dir_fd=pfd)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    try:
        _set_attrs(fd, uid, gid, mode)
    finally:
        os.close(fd)


def make_dir(rootfs: str, path: str, uid: int | None = None, gid: int | None = None,
             mode: int | str | None = None) -> None:
    """Create a directory (parent must exist). Already a directory (a symlink to one counts,
    as in LXD): success, unchanged. Defaults: 0:0, 0750."""
    cpath = clean_path(path)
    uid, gid, mode = check_id(uid, "uid"), check_id(gid, "gid"), check_mode(mode)
    with Root(rootfs) as root:
        if _is_dir_in_root(root, cpath):
            return
        parent, name = split(cpath)
        try:
            pfd = root.dir(parent)
            try:
                _mkdir_at(pfd, name, 0 if uid is None else uid, 0 if gid is None else gid,
                          DEFAULT_DIR_MODE if mode is None else mode)
            finally:
                os.close(pfd)
        except FileExistsError:
            if _is_dir_in_root(root, cpath):
                return
            raise FileError(f"Failed to create directory {cpath!r}: file exists", 400, cpath,
                            errno.EEXIST) from None
        except OSError as e:
            raise oserror(e, cpath, "create directory") from None


def mkdir_parents(rootfs: str, path: str, uid: int | None = None, gid: int | None = None,
                  mode: int | str | None = None) -> None:
    """`mkdir -p path` in-root: create `path` and any missing ancestors with uid/gid/mode
    (defaults 0:0, 0750); existing ones (symlinks to directories included) are left alone.
    For `lxc file push -p`, pass the directory that should hold the file."""
    cpath = clean_path(path)
    uid, gid, mode = check_id(uid, "uid"), check_id(gid, "gid"), check_mode(mode)
    uid = 0 if uid is None else uid
    gid = 0 if gid is None else gid
    mode = DEFAULT_DIR_MODE if mode is None else mode
    if cpath == "/":
        return
    parts = cpath.lstrip("/").split("/")
    with Root(rootfs) as root:
        for i in range(len(parts)):
            prefix = "/" + "/".join(parts[: i + 1])
            if _is_dir_in_root(root, prefix):
                continue
            parent, name = split(prefix)
            try:
                pfd = root.dir(parent)
                try:
                    _mkdir_at(pfd, name, uid, gid, mode)
                finally:
                    os.close(pfd)
            except FileExistsError:
                if not _is_dir_in_root(root, prefix):
                    raise FileError(f"Failed to create directory {prefix!r}: not a directory",
                                    400, prefix, errno.ENOTDIR) from None
            except OSError as e:
                raise oserror(e, prefix, "create directory") from None


def make_symlink(rootfs: str, path: str, target: str, uid: int | None = None,
                 gid: int | None = None) -> None:
    """Create a symlink whose target is stored verbatim (never resolved by the daemon).
    An existing symlink with the same target is a success; anything else there is an error."""
    cpath = clean_path(path)
    uid, gid = check_id(uid, "uid"), check_id(gid, "gid")
    if isinstance(target, (bytes, bytearray)):
        target = os.fsdecode(bytes(target))
    if not isinstance(target, str) or not target:
        raise FileError("Invalid symlink target: empty", 400, cpath)
    if "\x00" in target or len(os.fsencode(target)) >= PATH_MAX:
        raise FileError("Invalid symlink target", 400, cpath)
    parent, name = split(cpath)
    if not name:
        raise FileError("Failed to create symlink '/': file exists", 400, cpath, errno.EEXIST)
    with Root(rootfs) as root:
        try:
            pfd = root.dir(parent)
        except OSError as e:
            raise oserror(e, cpath, "create symlink") from None
        try:
            try:
                os.symlink(target, name, dir_fd=pfd)
            except FileExistsError:
                try:
                    if os.readlink(name, dir_fd=pfd) == target:
                        return
                except OSError:
                    pass
                raise
            if uid is not None or gid is not None:
                # lchown: never follows, so at worst re-owns whatever is now at `name` in-root.
                os.chown(name, -1 if uid is None else uid, -1 if gid is None else gid,
                         dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise oserror(e, cpath, "create symlink") from None
        finally:
            os.close(pfd)


def delete(rootfs: str, path: str) -> None:
    """Remove a file, a symlink (not its target) or an empty directory."""
    cpath = clean_path(path)
    parent, name = split(cpath)
    if not name:
        raise FileError("Refusing to delete the root directory", 400, cpath)
    with Root(rootfs) as root:
        try:
            pfd = root.dir(parent)
        except OSError as e:
            raise oserror(e, cpath, "delete") from None
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if statmod.S_ISDIR(st.st_mode):
                os.rmdir(name, dir_fd=pfd)
            else:
                os.unlink(name, dir_fd=pfd)
        except OSError as e:
            raise oserror(e, cpath, "delete") from None
        finally:
            os.close(pfd)
