"""Image file formats: fingerprints and compression detection by magic bytes (shared by the
importer, corral/image/extract.py, and the packer, corral/image/pack.py)."""
from __future__ import annotations

import hashlib

from corral.image.unpack import CHUNK, ImageError

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"hsqs", "squashfs"),
)


def fingerprint(paths: list[str]) -> str:
    """sha256 over the bytes of `paths`, in order (LXD: metadata tarball, then rootfs)."""
    h = hashlib.sha256()
    for p in paths:
        try:
            with open(p, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except OSError as e:
            raise ImageError(f"Failed to read image file: {e.strerror or e}") from None
    return h.hexdigest()


def detect_format(path: str) -> str:
    """"gzip", "xz", "bzip2", "zstd", "squashfs" or "tar" (anything else), by magic bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ImageError(f"Failed to read image file: {e.strerror or e}") from None
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "tar"
