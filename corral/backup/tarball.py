"""Backup tarballs as LXD writes them (instance and custom volume backups): backup/index.yaml, then
the volume trees, owners by number; the record (JSON) is written only once the tarball is complete.

A VM's disk (`blocks`: backup/virtual-machine.img, backup/virtual-machine-snapshots/<snap>.img) is
one member of the disk's size, stored as a PAX 1.0 sparse file (GNU tar's format, which GNU tar,
Go's archive/tar, so LXD, and Python read): only the disk's data extents are in the tarball, so a
mostly empty 10GiB disk costs what is written in it. A disk with more than 8GiB of data is stored
plainly (its holes as zeros), as LXD stores every disk."""
from __future__ import annotations

import errno
import io
import json
import os
import tarfile
import tempfile
import time

import yaml

COMPRESSIONS = {"gzip": "gz", "none": "", "bzip2": "bz2", "xz": "xz"}


def write_json(path: str, data: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def write_backup(tar_path: str, meta_path: str, index: dict, dirs: list[tuple[str, str]], comp: str,
                  record: dict, files: dict[str, bytes] | None = None,
                  blocks: list[tuple[str, str]] | None = None) -> None:
    """`dirs`: (member name, directory) trees; `files`: generated members (replacing those of the
    trees); `blocks`: (member name, disk file) disks, sparse, left out of any tree holding them."""
    os.makedirs(os.path.dirname(tar_path), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(tar_path), prefix=".partial-")
    os.close(fd)
    try:
        with tarfile.open(tmp, f"w:{comp}" if comp else "w", format=tarfile.PAX_FORMAT) as tf:
            data = yaml.safe_dump(index, default_flow_style=False).encode()
            info = tarfile.TarInfo("backup/index.yaml")
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tf.addfile(info, io.BytesIO(data))
            generated = set(files or {}) | _inside(dirs, blocks or [])
            for arc, src in dirs:
                # The volume's own backup.yaml is replaced by the one generated for this backup.
                tf.add(src, arcname=arc, recursive=True,
                       filter=lambda i: None if i.name in generated else _numeric(i))
            for arc, src in blocks or []:
                add_disk(tf, arc, src)
            for arc, content in (files or {}).items():
                info = tarfile.TarInfo(arc)
                info.size, info.mode, info.mtime = len(content), 0o400, int(time.time())
                tf.addfile(info, io.BytesIO(content))
        os.replace(tmp, tar_path)
        write_json(meta_path, record)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _inside(dirs: list[tuple[str, str]], blocks: list[tuple[str, str]]) -> set[str]:
    """Member names a tree would give the disk files (written as disks instead)."""
    out = set()
    for arc, src in dirs:
        for _barc, path in blocks:
            rel = os.path.relpath(os.path.realpath(path), os.path.realpath(src))
            if not rel.startswith(".."):
                out.add(f"{arc}/{rel}")
    return out


SPARSE_MAX = 8 * 2**30 - 2**20   # a ustar size field holds < 8GiB (more needs a pax "size")


def _extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of the data of a file (SEEK_DATA/SEEK_HOLE; all of it where unsupported)."""
    out: list[tuple[int, int]] = []
    off = 0
    try:
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:   # only a hole from here
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            out.append((start, end - start))
            off = end
    except OSError:
        return [(0, size)]
    return out


class _SparseData(io.RawIOBase):
    """A PAX 1.0 sparse member's data: the map (count, then offset and length per extent, in
    decimal lines, padded to 512 bytes), then the extents' bytes one after another."""

    def __init__(self, fd: int, header: bytes, extents: list[tuple[int, int]]):
        self.fd, self.extents, self.header = fd, list(extents), header
        self.pos, self.i, self.done = 0, 0, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = len(buf)
        if self.header:
            chunk, self.header = self.header[:n], self.header[n:]
        else:
            chunk = b""
            while self.i < len(self.extents) and not chunk:
                off, length = self.extents[self.i]
                if self.done < length:
                    chunk = os.pread(self.fd, min(n, length - self.done), off + self.done)
                    if not chunk:
                        raise OSError(f"disk file shrank while it was backed up (at {off + self.done})")
                    self.done += len(chunk)
                else:
                    self.i, self.done = self.i + 1, 0
        buf[:len(chunk)] = chunk
        return len(chunk)


def add_disk(tf: tarfile.TarFile, arcname: str, path: str, info: tarfile.TarInfo | None = None) -> None:
    """A disk file (or any sparse file) as one member `arcname` of its full size, sparse where it is
    small enough. `info`: the member's owner, mode, mtime and pax headers (default: 0600, now)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        extents = _extents(fd, size)
        data = sum(n for _, n in extents)
        if info is None:
            info = tarfile.TarInfo(arcname)
            info.mode, info.mtime = 0o600, int(time.time())
        info.name, info.type = arcname, tarfile.REGTYPE
        if data > SPARSE_MAX:
            info.size = size
            with os.fdopen(os.dup(fd), "rb") as f:
                tf.addfile(info, f)
            return
        if not extents or extents[-1][0] + extents[-1][1] < size:
            extents.append((size, 0))   # the size a reader truncates the file to (GNU tar does this too)
        header = f"{len(extents)}\n".encode() + b"".join(f"{o}\n{n}\n".encode() for o, n in extents)
        header += b"\0" * (-len(header) % tarfile.BLOCKSIZE)
        head, base = os.path.split(arcname)
        info.name = f"{head}/GNUSparseFile.0/{base}"
        info.size = len(header) + data
        info.pax_headers = {**info.pax_headers, "GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                            "GNU.sparse.name": arcname, "GNU.sparse.realsize": str(size)}
        tf.addfile(info, io.BufferedReader(_SparseData(fd, header, extents), 1 << 20))
    finally:
        os.close(fd)


def _numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owners by number only (the uids of the container, not names from the host)."""
    info.uname = info.gname = ""
    return info
