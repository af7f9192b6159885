"""Packing an image directory back into a unified LXD image tarball (`lxc publish`)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import tarfile
import tempfile
from typing import Callable, Iterator

from corral.image.formats import fingerprint
from corral.image.unpack import CHUNK, ENTRY_COST, Budget, ImageError, tool as _tool

_PACK_MODES = {"gzip": "w|gz", "xz": "w|xz", "none": "w|", "zstd": "w|"}


def pack_unified(src_dir: str, out_path: str, compression: str = "gzip",
                 progress: Callable[[int], None] | None = None,
                 budget: Budget | None = None) -> tuple[str, str, int]:
    """Write src_dir's metadata.yaml, templates/ and rootfs/ (a VM's: rootfs.img) as a unified image tarball.

    Streams (nothing is held in memory), keeps numeric owners/modes, symlinks, hardlinks and
    device nodes; progress(bytes_read_so_far) is called as file data is read. The tarball is
    written to a temp file beside out_path and renamed into place. The files packed (contents plus
    ENTRY_COST each) must fit `budget`, or ImageTooLarge is raised and nothing is left.
    Returns (out_path, fingerprint, size).
    """
    if compression not in _PACK_MODES:
        raise ImageError(f"Unsupported compression {compression!r} (use gzip, xz, zstd or none)")
    if not os.path.isfile(os.path.join(src_dir, "metadata.yaml")) or \
            not (os.path.isdir(os.path.join(src_dir, "rootfs")) or os.path.isfile(os.path.join(src_dir, "rootfs.img"))):
        raise ImageError(f"{src_dir} is not an image directory (needs metadata.yaml and rootfs/ or rootfs.img)")
    zstd = _tool("zstd") if compression == "zstd" else None
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out_path)}.tmp-",
                               dir=os.path.dirname(os.path.abspath(out_path)))
    counter = _Progress(progress, budget=budget or Budget.unlimited())
    try:
        with os.fdopen(fd, "wb") as out:
            proc = None
            if zstd:
                proc = subprocess.Popen([zstd, "-q", "-c", "-T0"], stdin=subprocess.PIPE, stdout=out,
                                        stderr=subprocess.PIPE)
                sink = proc.stdin
            else:
                sink = out
            try:
                kwargs = {"compresslevel": 6} if compression == "gzip" else {}
                with tarfile.open(fileobj=sink, mode=_PACK_MODES[compression],
                                  format=tarfile.PAX_FORMAT, **kwargs) as tar:
                    for arcname, path in _image_entries(src_dir):
                        _add(tar, arcname, path, counter)
            finally:
                if proc is not None:
                    proc.stdin.close()
                    err = proc.stderr.read().decode(errors="replace").strip()
                    proc.stderr.close()
                    if proc.wait() != 0:
                        raise OSError(f"zstd failed: {err}")
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    counter.done()
    return out_path, fingerprint([out_path]), os.path.getsize(out_path)


def _image_entries(src_dir: str) -> Iterator[tuple[str, str]]:
    yield "metadata.yaml", os.path.join(src_dir, "metadata.yaml")
    if os.path.isfile(os.path.join(src_dir, "rootfs.img")):   # a virtual machine's disk (qcow2)
        yield "rootfs.img", os.path.join(src_dir, "rootfs.img")
    for top in ("templates", "rootfs"):
        base = os.path.join(src_dir, top)
        if not os.path.isdir(base) or os.path.islink(base):
            continue
        yield top, base
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src_dir)
            for name in sorted(dirnames + filenames):
                yield f"{rel}/{name}", os.path.join(dirpath, name)


def _add(tar: tarfile.TarFile, arcname: str, path: str, counter: "_Progress") -> None:
    info = tar.gettarinfo(path, arcname)  # lstat: symlinks stay symlinks, hardlinks are detected
    if info is None:  # sockets
        return
    counter.budget.charge(ENTRY_COST)
    info.uname = info.gname = ""  # numeric owners only
    if not info.isreg():
        tar.addfile(info)
        return
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        tar.addfile(info, counter.wrap(f))


class _Progress:
    def __init__(self, callback: Callable[[int], None] | None, every: int = CHUNK,
                 budget: Budget | None = None):
        self.callback = callback
        self.budget = budget or Budget.unlimited()
        self.every = every
        self.total = 0
        self.reported = 0

    def wrap(self, f):
        progress = self

        class Reader:
            def read(self, size=-1):
                data = f.read(size)
                progress.add(len(data))
                return data
        return Reader()

    def add(self, n: int) -> None:
        self.budget.charge(n)
        self.total += n
        if self.callback and self.total - self.reported >= self.every:
            self.reported = self.total
            self.callback(self.total)

    def done(self) -> None:
        if self.callback and self.reported != self.total:
            self.reported = self.total
            self.callback(self.total)
