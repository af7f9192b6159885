"""An instance volume (or one of its snapshots) sent from one cluster member to another, as a plain
tar stream of its tree (a move or a copy across members; LXD sends it with rsync over its migration
websockets). Owners and modes are kept by number, hard links, symlinks, device nodes and extended
attributes (file capabilities) too; nothing is shifted (Corral keeps rootfs files unshifted). A
sparse file (a VM's disk) is sent as a PAX sparse member: its data only, holes kept on arrival.

The stream ends with an empty member named END: a stream cut at a member boundary is refused, not
taken for a smaller volume. The receiving side trusts the sender (another member, mutual TLS with the
cluster certificate) but still refuses what no real tree holds: absolute paths, "..", a name twice,
anything below a symlink, hard links to what it has not seen. Blocking functions: run them in a
thread; `BridgeWriter` / `BridgeReader` connect them to the event loop's HTTP streams.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import io
import logging
import os
import posixpath
import tarfile
from typing import Awaitable, Callable

from corral.backup.tarball import add_disk

log = logging.getLogger(__name__)

END = ".corral-end"              # the last member of every stream
XATTR = "CORRAL.xattr."           # pax header prefix of an extended attribute (base64 value)
BUFFER = 1 << 20


class TransferError(Exception):
    pass


# ---- sending --------------------------------------------------------------------------------------

def _xattrs(path: str) -> dict[str, str]:
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        try:
            out[XATTR + name] = base64.b64encode(os.getxattr(path, name, follow_symlinks=False)).decode()
        except OSError:
            continue
    return out


def write_tree(src: str, out) -> int:
    """The tree below `src` (not `src` itself) as a tar stream written to `out`; members sent."""
    n = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=BUFFER) as tf:
        for root, dirs, files in os.walk(src):
            dirs.sort()
            for name in dirs + sorted(files):
                path = os.path.join(root, name)
                ti = tf.gettarinfo(path, arcname=os.path.relpath(path, src))
                if ti is None:   # a socket: nothing to send
                    continue
                ti.uname = ti.gname = ""
                ti.pax_headers = _xattrs(path)
                if ti.isreg() and os.lstat(path).st_blocks * 512 < ti.size:
                    add_disk(tf, ti.name, path, ti)   # a sparse file (a VM's disk): its data only
                elif ti.isreg():
                    with open(path, "rb") as f:
                        tf.addfile(ti, f)
                else:
                    tf.addfile(ti)
                n += 1
        end = tarfile.TarInfo(END)
        end.mode = 0o600
        tf.addfile(end, io.BytesIO(b""))
    return n


# ---- receiving ------------------------------------------------------------------------------------

def _clean(name: str) -> str:
    if not name or name.startswith("/"):
        raise TransferError(f'absolute path "{name}" in the volume stream')
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise TransferError(f'path "{name}" escapes the volume')
    return "/".join(parts)


def _set_xattrs(path: str, ti: tarfile.TarInfo) -> int:
    failed = 0
    for key, value in ti.pax_headers.items():
        if not key.startswith(XATTR):
            continue
        try:
            os.setxattr(path, key[len(XATTR):], base64.b64decode(value), follow_symlinks=False)
        except OSError:
            failed += 1
    return failed


def extract_tree(src, dest: str) -> int:
    """Extract a stream written by `write_tree` into `dest` (an existing, empty directory);
    TransferError when the stream is incomplete or holds what no real tree holds."""
    seen: dict[str, tarfile.TarInfo] = {}
    links: set[str] = set()
    dirs: list[tuple[tarfile.TarInfo, str]] = []
    ended = False
    lost_xattrs = 0
    try:
        with tarfile.open(fileobj=src, mode="r|", bufsize=BUFFER) as tf:
            for ti in tf:
                if ended:
                    raise TransferError("data after the end of the volume stream")
                name = _clean(ti.name)
                if name == END:
                    ended = True
                    continue
                if not name:
                    continue
                if name in seen:
                    raise TransferError(f'"{name}" twice in the volume stream')
                parent = posixpath.dirname(name)
                while parent:
                    if parent in links or (parent in seen and not seen[parent].isdir()):
                        raise TransferError(f'"{name}" lies below a non-directory')
                    parent = posixpath.dirname(parent)
                if ti.islnk():
                    target = _clean(ti.linkname)
                    if target not in seen or not seen[target].isreg():
                        raise TransferError(f'hard link "{name}" to "{ti.linkname}"')
                    ti.linkname = target
                ti.name = name
                seen[name] = ti
                path = os.path.join(dest, name)
                if ti.issym():
                    links.add(name)
                if ti.isdir():   # writable while its entries come; its own attributes at the end
                    tmp = copy.copy(ti)
                    tmp.mode = 0o700
                    tf.extract(tmp, dest, set_attrs=False, filter="fully_trusted")
                    dirs.append((ti, path))
                else:
                    tf.extract(ti, dest, set_attrs=True, numeric_owner=True, filter="fully_trusted")
                lost_xattrs += _set_xattrs(path, ti)
            for ti, path in reversed(dirs):
                tf.chown(ti, path, True)
                tf.utime(ti, path)
                tf.chmod(ti, path)
    except (tarfile.TarError, EOFError) as e:
        raise TransferError(f"broken volume stream: {e}") from None
    if not ended:
        raise TransferError("the volume stream ended early")
    if lost_xattrs:
        log.warning("%s: %d extended attributes could not be set", dest, lost_xattrs)
    return len(seen)


# ---- between a worker thread and the event loop ---------------------------------------------------

class BridgeWriter(io.RawIOBase):
    """A blocking file (for a worker thread) whose writes are awaited on `loop` by `write`
    (an HTTP response's): the thread waits for each, so the network paces the reader of the disk."""

    def __init__(self, loop: asyncio.AbstractEventLoop, write: Callable[[bytes], Awaitable[None]]):
        self.loop, self._write = loop, write

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        data = bytes(b)
        if data and self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._write(data), self.loop).result()
        return len(data)

    def abandon(self) -> None:
        """Later writes are dropped, never sent to the loop (a finalizer's flush on the loop's own
        thread would wait for itself forever)."""
        self.loop = None


class BridgeReader(io.RawIOBase):
    """A blocking file (for a worker thread) reading what `read(n)` (an HTTP response's content,
    awaited on `loop`) gives; b"" at its end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read: Callable[[int], Awaitable[bytes]]):
        self.loop, self._read = loop, read
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = asyncio.run_coroutine_threadsafe(self._read(len(b)), self.loop).result()
        b[:len(data)] = data
        self.received += len(data)
        return len(data)


def buffered_writer(loop, write) -> io.BufferedWriter:
    """Call `.raw.abandon()` once the worker thread is done with it."""
    return io.BufferedWriter(BridgeWriter(loop, write), BUFFER)


def buffered_reader(loop, read) -> io.BufferedReader:
    return io.BufferedReader(BridgeReader(loop, read), BUFFER)
