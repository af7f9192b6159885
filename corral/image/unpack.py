"""Bounded reading of image archives: the size budget an import may use, decompression that
refuses a truncated stream, and tar reading that refuses an archive without its end blocks.

An image's *unpacked size* is what unpacking writes: the bytes of file contents (apparent size,
so a sparse member counts in full) plus 512 bytes per entry (tar's header size; this bounds
archives of millions of empty files too). The decompressed archive stream is counted against the
same limit, so padding or data after the end blocks cannot make the server decompress without
bound either. Both are checked as the bytes go by, so an import stops within one chunk (1 MiB)
of passing its limit.
"""
from __future__ import annotations

import bz2
import contextlib
import lzma
import os
import shutil
import subprocess
import tarfile
import zlib
from typing import Iterator

from corral.errors import BadRequest

CHUNK = 1 << 20
ENTRY_COST = 512
# pax / GNU long-name headers are read into memory by tarfile: keep them small.
MAX_SPECIAL_HEADER = 1 << 20
_SPECIAL_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                  tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)

# Read-side failures of a (possibly compressed) archive stream.
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)

_MAGIC = {"gzip": b"\x1f\x8b", "xz": b"\xfd7zXZ\x00", "bzip2": b"BZh"}


class ImageError(BadRequest):
    """A problem with an image supplied by the user (the API answers 400 with the message)."""


class StreamError(ImageError):
    """The archive stream itself could not be read (corrupt, truncated)."""


class ImageTooLarge(ImageError):
    """The image would pass its size limit."""


def invalid(err: BaseException | str) -> ImageError:
    return StreamError(f"Invalid image tarball: {err or type(err).__name__}")


def human(n: int) -> str:
    """LXD-style binary size ("200.00MiB")."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n}B" if unit == "B" else f"{n:.2f}{unit}"
        n /= 1024
    return str(n)


# --------------------------------------------------------------------------- budget

class Budget:
    """How much an import may unpack. `limits` are (bytes, why) pairs; the smallest applies.
    `written` counts unpacked bytes (file contents + ENTRY_COST per entry), `streamed` the
    decompressed archive bytes read; either passing the limit raises ImageTooLarge."""

    def __init__(self, limits: list[tuple[int, str]] | None = None, noun: str = "unpacked size"):
        limits = [lim for lim in (limits or []) if lim[0] is not None]
        self.limit, self.why = min(limits) if limits else (None, "")
        self.written = 0
        self.streamed = 0
        self.noun = noun

    @classmethod
    def unlimited(cls) -> "Budget":
        return cls()

    def _refuse(self) -> None:
        raise ImageTooLarge(f"Image is too large: its {self.noun} passes {self.why}")

    def ensure(self, n: int) -> None:
        """Refuse now if `n` more unpacked bytes would pass the limit (sizes announced in headers)."""
        if self.limit is not None and self.written + max(n, 0) > self.limit:
            self._refuse()

    def charge(self, n: int) -> None:
        self.written += n
        if self.limit is not None and self.written > self.limit:
            self._refuse()

    def charge_stream(self, n: int) -> None:
        self.streamed += n
        # headers, padding to 512-byte blocks and data after the end blocks are read but not
        # written: they may take the stream past the unpacked size, but not without bound
        if self.limit is not None and self.streamed > 2 * self.limit + CHUNK:
            self._refuse()


def free_space_limit(path: str, what: str) -> tuple[int, str]:
    """(bytes, why): the free space of the filesystem holding `path` minus a margin of 5% of its
    size (at most 1 GiB), which an import must leave free."""
    st = os.statvfs(path)
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    margin = min(total // 20, 1 << 30)
    avail = max(free - margin, 0)
    return avail, (f"the free space of {what} ({human(free)} free, keeping {human(margin)} free: "
                   f"at most {human(avail)} may be used)")


# --------------------------------------------------------------------------- decompression

class _Inflate:
    """The decompressed bytes of a gzip, xz or bzip2 file (concatenated members allowed, then
    only zero padding); a stream that ends before its end marker (gzip trailer, xz footer, bzip2
    end of stream) is refused, and no read returns more than asked, whatever the ratio."""

    def __init__(self, src, fmt: str):
        self.src, self.fmt = src, fmt
        self.d = self._new()
        self.pending = b""

    def _new(self):
        if self.fmt == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)  # checks the trailer's CRC and size
        return lzma.LZMADecompressor() if self.fmt == "xz" else bz2.BZ2Decompressor()

    def read(self, n: int = CHUNK) -> bytes:
        n = max(1, min(n if n and n > 0 else CHUNK, CHUNK))
        while self.d is not None:
            if self.d.eof:
                self._member_end()
                continue
            if self.pending:
                data, self.pending = self.pending, b""
            elif self.fmt == "gzip" or self.d.needs_input:
                data = self.src.read(CHUNK)
                if not data:
                    raise invalid(f"truncated {self.fmt} stream (it ends before its end marker)")
            else:
                data = b""
            try:
                out = self.d.decompress(data, n)
            except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as e:
                raise invalid(f"{self.fmt}: {e}") from None
            if self.fmt == "gzip":
                self.pending = self.d.unconsumed_tail
            if out:
                return out
        return b""

    def _member_end(self) -> None:
        rest = self.d.unused_data + self.pending
        self.pending = b""
        magic = _MAGIC[self.fmt]
        while len(rest) < len(magic):
            more = self.src.read(CHUNK)
            if not more:
                break
            rest += more
        if rest.startswith(magic):  # another member (pigz, pbzip2, xz -T)
            self.d, self.pending = self._new(), rest
            return
        while rest:
            if rest.strip(b"\0"):
                raise invalid(f"trailing data after the {self.fmt} stream")
            rest = self.src.read(CHUNK)
        self.d = None


class _Counted:
    def __init__(self, src, budget: Budget):
        self.src, self.budget = src, budget

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n if n and n > 0 else CHUNK)
        self.budget.charge_stream(len(data))
        return data


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ImageError(f"Cannot handle this image: the {name} tool is not installed on the server")
    return path


def _zstd_failed(proc: subprocess.Popen) -> None:
    err = proc.stderr.read().decode(errors="replace").strip().splitlines()
    # zstd prefixes its messages with the file name: keep server paths out of the error.
    msg = err[-1].split(" : ", 1)[-1] if err else "decompression failed"
    raise ImageError(f"Invalid image tarball: zstd: {msg}")


class _TarInfo(tarfile.TarInfo):
    """Notes the end-of-archive block, and refuses oversized pax / long-name headers
    (tarfile reads those into memory)."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        obj = super().frombuf(buf, encoding, errors)
        if obj.type in _SPECIAL_TYPES and obj.size > MAX_SPECIAL_HEADER:
            raise invalid(f"extended header of {obj.size} bytes (limit {MAX_SPECIAL_HEADER})")
        return obj

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            tar.corral_end_seen = True
            raise


@contextlib.contextmanager
def open_tar(path: str, fmt: str, budget: Budget) -> Iterator[tarfile.TarFile]:
    """A streaming TarFile over the decompressed archive at `path` (fmt from detect_format).
    Leaving the block without an exception checks the rest of the stream (end marker, trailing
    data) and that the archive had its end-of-archive block."""
    proc = None
    try:
        if fmt == "zstd":
            proc = subprocess.Popen([tool("zstd"), "-dcq", "--", path], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            raw = proc.stdout
        else:
            raw = open(path, "rb")
        with raw:
            src = _Inflate(raw, fmt) if fmt in _MAGIC else raw
            stream = _Counted(src, budget)
            try:
                try:
                    tar = tarfile.open(fileobj=stream, mode="r|", tarinfo=_TarInfo, bufsize=CHUNK)
                except READ_ERRORS as e:
                    raise invalid(e) from None
                tar.corral_end_seen = False
                with tar:
                    yield tar
                    if not tar.corral_end_seen:
                        raise invalid("the archive ends without its end-of-archive blocks "
                                      "(truncated or corrupt)")
                    try:  # consume the rest: padding, and the compressed stream's end marker
                        while stream.read(CHUNK):
                            pass
                    except READ_ERRORS as e:
                        raise invalid(e) from None
            except StreamError:
                # A truncated tar stream is most likely zstd having failed: say so.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    if proc is not None and proc.wait(timeout=2) != 0:
                        _zstd_failed(proc)
                raise
        if proc is not None and proc.wait() != 0:
            _zstd_failed(proc)
    finally:
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stderr.close()


# --------------------------------------------------------------------------- squashfs

def squashfs_size(path: str, budget: Budget) -> int:
    """The unpacked size of a squashfs image from its listing (unsquashfs -lln), without
    unpacking it; refuses (and stops listing) as soon as it would pass `budget`."""
    proc = subprocess.Popen([tool("unsquashfs"), "-no-progress", "-lln", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    total = 0
    try:
        for line in proc.stdout:
            fields = line.split(None, 3)
            if len(fields) < 3 or fields[0][:1] not in b"-dlcbps" or len(fields[0]) != 10:
                continue
            total += ENTRY_COST
            if fields[0][:1] == b"-":
                try:
                    total += int(fields[2])
                except ValueError:
                    raise ImageError("Invalid squashfs rootfs: unreadable listing") from None
            budget.ensure(total)
        err = proc.stderr.read().decode(errors="replace").strip().splitlines()
        if proc.wait() != 0:
            raise ImageError(f"Invalid squashfs rootfs: {err[-1] if err else 'unsquashfs failed'}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return total


def unsquashfs(path: str, dest: str, budget: Budget) -> None:
    squashfs_size(path, budget)
    proc = subprocess.run([tool("unsquashfs"), "-no-progress", "-quiet", "-no-xattrs", "-d", dest, path],
                          stdin=subprocess.DEVNULL, capture_output=True)
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise ImageError(f"Invalid squashfs rootfs: {err[-1] if err else 'unsquashfs failed'}")


# --------------------------------------------------------------------------- limits

def budget_for(max_size: int | str | None, data_dir: str, target: str, what: str,
               noun: str = "unpacked size") -> Budget:
    """The budget of an image unpacked (or stored) under `target`: images.max_unpacked_size
    (`max_size`: bytes, or "N%" of the filesystem holding `data_dir`, computed now) and the
    free space of `target`'s filesystem minus a margin (`what` names it in errors)."""
    limits = []
    if isinstance(max_size, str) and max_size.endswith("%"):
        st = os.statvfs(data_dir)
        n = st.f_blocks * st.f_frsize * int(max_size[:-1]) // 100
        limits.append((n, f"images.max_unpacked_size ({max_size} of the server's disk: {human(n)})"))
    elif max_size:
        limits.append((int(max_size), f"images.max_unpacked_size ({human(int(max_size))})"))
    while not os.path.isdir(target) and os.path.dirname(target) != target:
        target = os.path.dirname(target)
    limits.append(free_space_limit(target, what))
    return Budget(limits, noun)
