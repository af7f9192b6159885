"""Generated image archives for the image-limit and fuzz tests: tar streams built header by header
(so they can be huge, sparse, lying or truncated without being held in memory), compressed with
every compression corral accepts, and gzip "zip bombs" of zeros made in a fraction of a second."""
from __future__ import annotations

import bz2
import lzma
import subprocess
import tarfile
import time
import zlib
from typing import Iterable, Iterator

MIB = 1 << 20
ZERO_MIB = bytes(MIB)
BLOCK = 512

METADATA = (b"architecture: x86_64\ncreation_date: %d\nproperties:\n  description: generated\n"
            % int(time.time()))


def info(name: str, kind=tarfile.REGTYPE, size: int = 0, mode: int = 0o644, linkname: str = "",
         pax: dict | None = None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.mtime, ti.linkname = kind, size, mode, 1700000000, linkname
    if pax:
        ti.pax_headers = dict(pax)
    return ti


def header(ti: tarfile.TarInfo) -> bytes:
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pad(n: int) -> bytes:
    return bytes(-n % BLOCK)


def entry(ti: tarfile.TarInfo, data: bytes | int = b"") -> Iterator[bytes]:
    """Header then data: bytes, or an int for that many zero bytes (yielded 1 MiB at a time)."""
    yield header(ti)
    if isinstance(data, int):
        left = data
        while left >= MIB:
            yield ZERO_MIB
            left -= MIB
        if left:
            yield bytes(left)
        yield _pad(data)
    else:
        yield data
        yield _pad(len(data))


def image_head(metadata: bytes = METADATA, split_rootfs: bool = False) -> Iterator[bytes]:
    yield from entry(info("metadata.yaml", size=len(metadata)), metadata)
    if not split_rootfs:
        yield from entry(info("rootfs", tarfile.DIRTYPE, mode=0o755))


def end_blocks() -> Iterator[bytes]:
    yield bytes(2 * BLOCK)


def zero_bomb(zeros: int, file_size: int | None = None, metadata: bytes = METADATA,
              split_rootfs: bool = False) -> Iterator[bytes]:
    """A unified image whose rootfs holds `zeros` zero bytes, in files of `file_size` (default: one
    file), so that no single header announces more than file_size. split_rootfs: a split image's
    rootfs tarball (no metadata.yaml, paths relative to the rootfs)."""
    if not split_rootfs:
        yield from image_head(metadata)
    prefix = "" if split_rootfs else "rootfs/"
    file_size = file_size or zeros
    i = 0
    while zeros > 0:
        n = min(file_size, zeros)
        yield from entry(info(f"{prefix}zeros{i}", size=n), n)
        zeros -= n
        i += 1
    yield from end_blocks()


def sparse_bomb(apparent: int) -> Iterator[bytes]:
    """A unified image with a GNU sparse (pax 1.0) member of `apparent` bytes stored as one hole."""
    yield from image_head()
    sparse_map = b"1\n0\n0\n"   # one data region, of length 0: the rest is a hole
    data = sparse_map + _pad(len(sparse_map))
    ti = info("rootfs/GNUSparseFile.0/hole", size=len(data),
              pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "rootfs/hole",
                   "GNU.sparse.realsize": str(apparent)})
    yield header(ti)
    yield data
    yield from end_blocks()


def flat(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


# ---- compression -------------------------------------------------------------------------------

def _gzip(chunks: Iterable[bytes], out) -> None:
    """gzip, fast for long runs of zeros: each 1 MiB zero chunk is compressed once after a full
    flush (which resets the compressor), and its compressed bytes repeated."""
    co = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = size = 0
    out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
    zero_block = None
    for chunk in chunks:
        if chunk is ZERO_MIB:
            out.write(co.flush(zlib.Z_FULL_FLUSH))
            if zero_block is None:
                zero_block = co.compress(ZERO_MIB) + co.flush(zlib.Z_FULL_FLUSH)
            out.write(zero_block)
        else:
            out.write(co.compress(chunk))
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
    out.write(co.flush())
    out.write(crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little"))


def write(path, chunks: Iterable[bytes], comp: str = "gz"):
    """Write the tar stream `chunks` to `path` compressed with gz, xz, bz2, zst or none."""
    with open(path, "wb") as out:
        if comp == "gz":
            _gzip(chunks, out)
        elif comp in ("xz", "bz2"):
            c = lzma.LZMACompressor(preset=0) if comp == "xz" else bz2.BZ2Compressor(1)
            for chunk in chunks:
                out.write(c.compress(chunk))
            out.write(c.flush())
        elif comp == "zst":
            proc = subprocess.Popen(["zstd", "-q", "-c", "-1"], stdin=subprocess.PIPE, stdout=out)
            for chunk in chunks:
                proc.stdin.write(chunk)
            proc.stdin.close()
            assert proc.wait() == 0
        elif comp == "none":
            for chunk in chunks:
                out.write(chunk)
        else:
            raise ValueError(comp)
    return path


def compress_bytes(raw: bytes, comp: str) -> bytes:
    if comp == "gz":
        import gzip
        return gzip.compress(raw, 6)
    if comp == "xz":
        return lzma.compress(raw, preset=0)
    if comp == "bz2":
        return bz2.compress(raw, 1)
    if comp == "zst":
        return subprocess.run(["zstd", "-q", "-c", "-1"], input=raw, capture_output=True, check=True).stdout
    return raw
