"""Raw disk files of virtual machines (a VM volume's root.img) and the image disks they are made
from: format probing and conversion with qemu-img, sizes rounded as LXD rounds them, growing (never
shrinking), sparse copies and allocated-space accounting.

An image's disk is given by the user: it is never opened with format probing (a raw file holding a
qcow2 header could name a host file as its backing file), only as the format its magic says, and a
qcow2 with a backing file or an external data file is refused.
"""
from __future__ import annotations

import json
import os
import subprocess

from corral.errors import BadRequest
from corral.storage import gpt
from corral.storage.errors import StorageError

# LXD's MinBlockBoundary: QEMU wants disk files in whole 8 KiB blocks
MIN_BLOCK_BOUNDARY = 8192
QCOW2_MAGIC = b"QFI\xfb"
ZERO_CHUNK = 1 << 20
SHRINK_ERROR = "Block volumes cannot be shrunk: Cannot be shrunk"   # LXD's (ErrCannotBeShrunk wrapped)


class DiskImageError(BadRequest):
    """An image's disk that cannot be used (the API answers 400)."""


def round_size(size: int) -> int:
    """LXD's roundVolumeBlockSizeBytes: at least 8 KiB, rounded up to a multiple of 8 KiB."""
    size = max(int(size), MIN_BLOCK_BOUNDARY)
    return -(-size // MIN_BLOCK_BOUNDARY) * MIN_BLOCK_BOUNDARY


def disk_format(path: str) -> str:
    """"qcow2" or "raw", from the file's first bytes."""
    with open(path, "rb") as f:
        return "qcow2" if f.read(4) == QCOW2_MAGIC else "raw"


def _qemu_img(args: list[str], what: str, timeout: float | None = None) -> str:
    try:
        res = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise StorageError(f"{what}: qemu-img is not installed (Debian package qemu-utils)") from None
    except subprocess.TimeoutExpired:
        raise DiskImageError(f"{what}: qemu-img took too long") from None
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise DiskImageError(f"{what}: {msg[-1] if msg else 'exit status %d' % res.returncode}")
    return res.stdout


def disk_info(path: str) -> dict:
    """qemu-img's view of an image disk (format, virtual-size, actual-size), checked: a qcow2 may not
    use a backing file or an external data file."""
    fmt = disk_format(path)
    out = json.loads(_qemu_img(["info", "-f", fmt, "--output=json", path], "Invalid image disk", timeout=60))
    if fmt == "qcow2":
        if out.get("backing-filename") or out.get("full-backing-filename"):
            raise DiskImageError("Invalid image disk: a qcow2 image with a backing file is not supported")
        data = (out.get("format-specific") or {}).get("data") or {}
        if data.get("data-file") or data.get("data-file-raw"):
            raise DiskImageError("Invalid image disk: a qcow2 image with an external data file is not supported")
    size = out.get("virtual-size")
    if not isinstance(size, int) or size <= 0:
        raise DiskImageError("Invalid image disk: it has no size")
    out["format"] = fmt
    return out


def convert_to_raw(src: str, dst: str, info: dict | None = None) -> int:
    """`qemu-img convert -O raw` (sparse: zeroes are holes) of an image disk to `dst`, which must not
    exist (it is created, so it inherits the nodatacow flag of a btrfs volume directory); returns
    the image's virtual size. `info`: what disk_info() said of `src`."""
    info = info or disk_info(src)
    if os.path.lexists(dst):
        raise StorageError(f"Disk file {dst} already exists")
    try:
        _qemu_img(["convert", "-f", info["format"], "-O", "raw", src, dst], "Failed converting the image disk to raw")
    except BaseException:
        if os.path.lexists(dst):
            os.unlink(dst)
        raise
    return info["virtual-size"]


def grow(path: str, size: int, *, shrink_ok: bool = False) -> bool:
    """Make the disk file `size` bytes (rounded up to 8 KiB) and move a GPT's backup header to its
    new end. Smaller than it is: LXD's error (or, with `shrink_ok`, nothing: creation from an image
    larger than the default size). True when the file changed size."""
    size = round_size(size)
    old = os.path.getsize(path)
    if size == old:
        return False
    if size < old:
        if shrink_ok:
            return False
        raise StorageError(SHRINK_ERROR)
    os.truncate(path, size)
    gpt.move_backup_header(path)
    return True


def allocated(path: str) -> int:
    """Bytes allocated on disk for a file or a tree (sparse holes cost nothing; hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    if not os.path.isdir(path) or os.path.islink(path):
        try:
            return os.lstat(path).st_blocks * 512
        except FileNotFoundError:
            return 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def sparse_copy(src: str, dst: str) -> None:
    """Copy the file `src` to `dst` (made, 0600 until the caller sets its mode) writing only its data
    extents (SEEK_DATA/SEEK_HOLE): holes stay holes. For drivers without `cp` (the fake driver)."""
    size = os.path.getsize(src)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        off = 0
        while off < size:
            try:
                start = os.lseek(fi.fileno(), off, os.SEEK_DATA)
            except OSError:
                break
            end = min(os.lseek(fi.fileno(), start, os.SEEK_HOLE), size)
            fi.seek(start)
            fo.seek(start)
            write_sparse(fi, fo, end - start)
            off = end
        fo.truncate(size)


def write_sparse(src, dst, length: int) -> None:
    """Copy `length` bytes from the file object `src` into the open file `dst` at its position,
    seeking over all-zero chunks instead of writing them (a disk restored from a backup stays sparse)."""
    zero = bytes(ZERO_CHUNK)
    left = length
    while left > 0:
        chunk = src.read(min(ZERO_CHUNK, left))
        if not chunk:
            raise StorageError("Unexpected end of the disk data")
        if chunk == zero[:len(chunk)]:
            dst.seek(len(chunk), os.SEEK_CUR)
        else:
            dst.write(chunk)
        left -= len(chunk)
