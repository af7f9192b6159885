"""The pool layer (LXD's storage.Pool / backend_lxd): one object per pool, above its driver, doing the
instance-, image- and custom-volume orchestration in Volume terms. Code outside corral/storage/
calls these and never builds a path into a pool: where it needs files (liblxc's rootfs, a backup's
source, a disk device's mount) the pool hands out the volume's mount path.

Instance volumes are named by `volume_name(project, name)` (the project prefix outside the default
project), custom volumes `<project>_<name>`, image volumes by fingerprint. Every method is
blocking (run it in a thread); a failure leaves nothing half-made.

The instance methods work on a container's volume, or with `vtype="virtual-machine"` on a VM's
(LXD's pair: a config directory with the disk root.img in it; `instance_path` is the config
directory, `instance_block_path` the disk QEMU gets). VM disks: corral/storage/vmvolumes.py.
"""
from __future__ import annotations

import os
from typing import Callable

from corral.storage.drivers.base import BLOCK_FILE, StorageDriver, StorageError
from corral.storage import vmvolumes
from corral.storage.volume import (BLOCK, CONTAINER, CUSTOM, FILESYSTEM, IMAGE, VM, Info, Volume,
                                   custom_volume_name, instance_volume_name)

Filler = Callable[[str], object]


class Pool:
    def __init__(self, name: str, driver: StorageDriver):
        self.name = name
        self.driver = driver

    @property
    def config(self) -> dict[str, str]:
        return self.driver.config

    def info(self) -> Info:
        return self.driver.info()

    # ---- volume objects -------------------------------------------------------------------------

    def instance_volume(self, vol: str, snap: str | None = None, *, vtype: str = CONTAINER,
                        config: dict | None = None) -> Volume:
        """A container's volume, or (vtype "virtual-machine") a VM's, content type block."""
        if vtype not in (CONTAINER, VM):
            raise StorageError(f'Invalid instance volume type "{vtype}"')
        v = Volume(self.name, vol, vtype, BLOCK if vtype == VM else FILESYSTEM, dict(config or {}))
        return v.snapshot(snap) if snap else v

    def image_volume(self, fingerprint: str, *, vtype: str = CONTAINER) -> Volume:
        """A container image's volume (metadata.yaml, templates/, rootfs/) or a VM image's (content
        type block: metadata.yaml, templates/, root.img). The same name: an image has one type."""
        return Volume(self.name, fingerprint, IMAGE, BLOCK if vtype == VM else FILESYSTEM)

    def custom_volume(self, project: str, name: str, content_type: str = FILESYSTEM,
                      config: dict | None = None, snap: str | None = None) -> Volume:
        v = Volume(self.name, custom_volume_name(project, name), CUSTOM, content_type or FILESYSTEM,
                   dict(config or {}))
        return v.snapshot(snap) if snap else v

    @staticmethod
    def volume_name(project: str, name: str) -> str:
        return instance_volume_name(project, name)

    # ---- generic volume operations --------------------------------------------------------------

    def exists(self, vol: Volume) -> bool:
        return self.driver.has_volume(vol)

    def mount(self, vol: Volume) -> str:
        return self.driver.mount_volume(vol)

    def unmount(self, vol: Volume) -> None:
        self.driver.unmount_volume(vol)

    def block_device(self, vol: Volume) -> str:
        """The disk file of a block volume (what a virtual machine's disk device would attach)."""
        if vol.content_type != BLOCK:
            raise StorageError(f"Volume {vol.name} is not a block volume")
        self.driver.mount_volume(vol)
        return self.driver.block_path(vol)

    def create(self, vol: Volume, filler: Filler | None = None) -> None:
        self.driver.create_volume(vol, filler)

    def copy(self, vol: Volume, src_pool: "Pool", src: Volume, snapshots=()) -> None:
        self.driver.create_volume_from_copy(vol, src, src_pool.driver, list(snapshots))

    def refresh(self, vol: Volume, src_pool: "Pool", src: Volume, snapshots=()) -> None:
        self.driver.refresh_volume(vol, src, src_pool.driver, list(snapshots))

    def snapshot(self, vol: Volume, snap: str) -> None:
        self.driver.create_volume_snapshot(vol.snapshot(snap))

    def delete_snapshot(self, vol: Volume, snap: str) -> None:
        self.driver.delete_volume_snapshot(vol.snapshot(snap))

    def rename_snapshot(self, vol: Volume, snap: str, new: str) -> None:
        self.driver.rename_volume_snapshot(vol.snapshot(snap), new)

    def restore(self, vol: Volume, snap: str) -> None:
        self.driver.restore_volume(vol, snap)

    def rename(self, vol: Volume, new: str) -> None:
        self.driver.rename_volume(vol, new)

    def delete(self, vol: Volume) -> None:
        self.driver.delete_volume(vol)

    def set_quota(self, vol: Volume, size: int | None) -> None:
        self.driver.set_volume_quota(vol, size)

    def check_quota_supported(self) -> None:
        self.driver.check_quota_supported()

    def usage(self, vol: Volume) -> int:
        return self.driver.get_volume_usage(vol)

    def snapshot_names(self, vol: Volume) -> list[str]:
        """Snapshots present in the pool (not necessarily recorded)."""
        return self.driver.list_snapshots(vol)

    def create_from_backup(self, vol: Volume, fill: Filler, snapshots: list[tuple[str, Filler]]) -> None:
        """A volume and its snapshots filled from a backup (each `fill(path)` writes into the new,
        empty volume); undone whole on failure (a volume or snapshots there already: refused, kept)."""
        if self.driver.has_volume(vol) or os.path.lexists(self.driver.snapshots_path(vol)):
            raise StorageError(f"Volume {vol.name} already exists in pool {self.name}")
        try:
            self.driver.create_volume(vol, fill)
            for snap, sfill in snapshots:
                self.driver.create_volume(vol.snapshot(snap), sfill)
        except BaseException:
            self.driver.delete_volume(vol)
            raise

    # ---- instance volumes -----------------------------------------------------------------------

    def create_instance_from_image(self, vol: str, fingerprint: str, *, vtype: str = CONTAINER,
                                   size: int | str | None = None) -> str:
        """The instance volume from the pool's image volume (ensure_image first); its mount path.
        A VM's disk is `size` (the root disk device's "size"; else the pool's volume.size; else
        LXD's 10GiB, or the image's own size when that is larger); a given size smaller than the
        image's is refused with LXD's error."""
        if vtype == VM:
            return vmvolumes.create_from_image(self, vol, fingerprint, size)
        v = self.instance_volume(vol)
        self.driver.create_volume_from_image(v, self.image_volume(fingerprint))
        return self.mount(v)

    def create_instance_empty(self, vol: str, *, vtype: str = CONTAINER, size: int | str | None = None) -> str:
        """An empty instance volume (a VM's: an empty config directory and a sparse disk of `size`,
        else the pool's volume.size, else 10GiB); its mount path."""
        if vtype == VM:
            return vmvolumes.create_empty(self, vol, size)
        v = self.instance_volume(vol)
        self.driver.create_volume(v, lambda path: os.mkdir(os.path.join(path, "rootfs"), 0o755))
        return self.mount(v)

    def create_instance_from_copy(self, vol: str, src_pool: "Pool", src_vol: str, src_snap: str | None = None,
                                  snapshots=(), *, vtype: str = CONTAINER) -> None:
        """A copy of another instance's volume (or of one of its snapshots), with `snapshots` (a VM's
        disks copied sparse: reflinks or holes kept; btrfs: subvolume snapshots)."""
        self.copy(self.instance_volume(vol, vtype=vtype), src_pool,
                  src_pool.instance_volume(src_vol, src_snap, vtype=vtype), snapshots)

    def refresh_instance(self, vol: str, src_pool: "Pool", src_vol: str, snapshots=(), *,
                         vtype: str = CONTAINER) -> None:
        """Bring a copy up to date: the source's `snapshots` it lacks, then the volume itself."""
        self.refresh(self.instance_volume(vol, vtype=vtype), src_pool, src_pool.instance_volume(src_vol, vtype=vtype),
                     snapshots)

    def create_instance_snapshot(self, vol: str, snap: str, *, vtype: str = CONTAINER) -> None:
        self.snapshot(self.instance_volume(vol, vtype=vtype), snap)

    def delete_instance_snapshot(self, vol: str, snap: str, *, vtype: str = CONTAINER) -> None:
        self.delete_snapshot(self.instance_volume(vol, vtype=vtype), snap)

    def rename_instance_snapshot(self, vol: str, snap: str, new: str, *, vtype: str = CONTAINER) -> None:
        self.rename_snapshot(self.instance_volume(vol, vtype=vtype), snap, new)

    def restore_instance(self, vol: str, snap: str, *, vtype: str = CONTAINER) -> None:
        self.restore(self.instance_volume(vol, vtype=vtype), snap)

    def rename_instance(self, vol: str, new: str, *, vtype: str = CONTAINER) -> None:
        self.rename(self.instance_volume(vol, vtype=vtype), new)

    def delete_instance(self, vol: str, *, vtype: str = CONTAINER) -> None:
        self.delete(self.instance_volume(vol, vtype=vtype))

    def has_instance(self, vol: str, *, vtype: str = CONTAINER) -> bool:
        return self.exists(self.instance_volume(vol, vtype=vtype))

    def has_instance_snapshots(self, vol: str, *, vtype: str = CONTAINER) -> bool:
        return os.path.lexists(self.driver.snapshots_path(self.instance_volume(vol, vtype=vtype)))

    def instance_path(self, vol: str, snap: str | None = None, *, vtype: str = CONTAINER) -> str:
        """The mount path of an instance volume (or snapshot): metadata.yaml, templates/, rootfs/
        (a VM's: metadata.yaml, templates/, backup.yaml, its agent's files, and root.img)."""
        return self.mount(self.instance_volume(vol, snap, vtype=vtype))

    def instance_snapshots_path(self, vol: str, *, vtype: str = CONTAINER) -> str:
        """Where the instance's snapshots are mounted (LXD's data dir links snapshots/<vol> to it)."""
        return self.driver.snapshots_path(self.instance_volume(vol, vtype=vtype))

    def instance_volume_names(self, *, vtype: str = CONTAINER) -> list[str]:
        return self.driver.list_volumes(vtype)

    def instance_usage(self, vol: str, *, vtype: str = CONTAINER) -> int:
        """Bytes used by an instance volume (a VM's: blocks allocated to its disk and config files)."""
        return self.usage(self.instance_volume(vol, vtype=vtype))

    def instance_block_path(self, vol: str, snap: str | None = None) -> str:
        """A VM's disk file (root.img, raw): what QEMU is given."""
        return self.block_device(self.instance_volume(vol, snap, vtype=VM))

    def instance_disk_size(self, vol: str, snap: str | None = None) -> int:
        """The size of a VM's disk, in bytes."""
        return os.path.getsize(self.instance_block_path(vol, snap))

    def grow_instance_disk(self, vol: str, size_bytes: int) -> bool:
        """A VM's disk grown to `size_bytes` (rounded up to 8 KiB, as LXD does; the backup GPT moved
        to the new end). Smaller than it is: LXD's "Block volumes cannot be shrunk: Cannot be
        shrunk". True when it grew (a running VM's QEMU must then be told: block_resize)."""
        v = self.instance_volume(vol, vtype=VM)
        self.mount(v)
        return self.driver.grow_disk(v, size_bytes)

    # ---- image volumes --------------------------------------------------------------------------

    def has_image(self, fingerprint: str, *, vtype: str = CONTAINER) -> bool:
        path = self.driver.volume_path(self.image_volume(fingerprint))
        content = os.path.join(path, BLOCK_FILE) if vtype == VM else os.path.join(path, "rootfs")
        return (os.path.isfile(content) if vtype == VM else os.path.isdir(content)) and \
            os.path.isfile(os.path.join(path, "metadata.yaml"))

    def create_image(self, fingerprint: str, unpack: Filler, *, vtype: str = CONTAINER) -> None:
        """The image volume: `unpack(dest)` fills a directory that does not exist yet (whose parent
        is on the pool: what an unpack's space budget is measured against). A VM image's unpack
        writes metadata.yaml, templates/ and the raw disk root.img (corral/image/vmunpack.py); on
        btrfs its directory is nodatacow before, and the volume read-only after."""
        v = self.image_volume(fingerprint, vtype=vtype)
        self.driver.delete_volume(v)   # a stale or half-made copy

        def fill(path: str) -> None:
            inner = os.path.join(path, "unpacked")
            unpack(inner)
            for e in os.listdir(inner):
                os.rename(os.path.join(inner, e), os.path.join(path, e))
            os.rmdir(inner)
        self.driver.create_volume(v, fill)

    def delete_image(self, fingerprint: str) -> None:
        self.driver.delete_volume(self.image_volume(fingerprint))

    def image_fingerprints(self) -> list[str]:
        return self.driver.list_volumes(IMAGE)

    def space_probe(self) -> str:
        """A path on the pool's filesystem, for free-space checks (statvfs) only."""
        return self.driver.path
