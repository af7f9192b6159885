"""Virtual-machine instance volumes in a Pool (LXD's VM volume pair: a small config directory,
`virtual-machines/<volume>/` with metadata.yaml, templates/, backup.yaml and the agent's files,
holding the raw disk `root.img`; snapshots in `virtual-machines-snapshots/<volume>/<snapshot>/`).

A VM made from an image is a copy of the pool's image volume (`images/<fingerprint>/`: metadata.yaml,
templates/ and the image's disk converted to raw once, at the image's own size; on btrfs a read-only
subvolume that instances are snapshots of, O(1); on dir a sparse copy, reflinked where the filesystem
can), its disk then grown to the root disk's size. The image volume is kept at the image's size
rather than LXD's (the pool's volume.size), so any instance size not smaller than the image's is a
snapshot plus a grow, and a change of volume.size never regenerates it.

Sizes as LXD's Volume.ConfigSizeFromSource decides them: a size given (the root disk device's
"size", else the pool's volume.size) that is smaller than the image's disk is refused with LXD's
error; without one, LXD's 10GiB default, or the image's size when it is larger.
"""
from __future__ import annotations

import os

from corral.storage import vmdisk
from corral.storage.drivers.base import BLOCK_FILE
from corral.storage.errors import StorageError
from corral.storage.sizes import parse_size
from corral.storage.volume import DEFAULT_BLOCK_SIZE, VM


def _bytes(size: int | str | None) -> int:
    if size is None or size == "":
        return 0
    return size if isinstance(size, int) else parse_size(str(size))


def requested_size(pool, size: int | str | None) -> int:
    """The size given for a new VM disk (rounded to 8 KiB): `size`, else the pool's volume.size; 0
    when neither is set."""
    n = _bytes(size) or _bytes(pool.config.get("volume.size"))
    return vmdisk.round_size(n) if n else 0


def root_size(pool, image_size: int, size: int | str | None) -> int:
    """The disk size of a VM made from an image whose disk is `image_size` bytes."""
    want = requested_size(pool, size)
    if want:
        if want < image_size:
            raise StorageError(f"Source image size ({image_size}) exceeds specified volume size ({want})")
        return want
    return max(vmdisk.round_size(parse_size(DEFAULT_BLOCK_SIZE)), image_size)


def image_disk_size(pool, fingerprint: str) -> int:
    """The size of the disk of a VM image unpacked in the pool (its virtual size)."""
    img = pool.image_volume(fingerprint, vtype=VM)
    path = os.path.join(pool.driver.volume_path(img), BLOCK_FILE)
    if not os.path.isfile(path):
        raise StorageError(f"Image {fingerprint} is not unpacked in pool {pool.name}")
    return os.path.getsize(path)


def create_from_image(pool, vol: str, fingerprint: str, size: int | str | None) -> str:
    total = root_size(pool, image_disk_size(pool, fingerprint), size)
    v = pool.instance_volume(vol, vtype=VM, config={"size": str(total)})
    pool.driver.create_volume_from_image(v, pool.image_volume(fingerprint, vtype=VM))
    return pool.mount(v)


def create_empty(pool, vol: str, size: int | str | None) -> str:
    total = requested_size(pool, size) or vmdisk.round_size(parse_size(DEFAULT_BLOCK_SIZE))
    v = pool.instance_volume(vol, vtype=VM, config={"size": str(total)})
    pool.driver.create_volume(v)
    return pool.mount(v)
