"""The pool layer (LXD's storage.Pool / backend_lxd): one object per pool, above its driver, doing the
instance-, image- and custom-volume orchestration in Volume terms. Code outside corral/storage/
calls these and never builds a path into a pool: where it needs files (liblxc's rootfs, a backup's
source, a disk device's mount) the pool hands out the volume's mount path.

Instance volumes are named by `volume_name(project, name)` (the project prefix outside the default
project), custom volumes `<project>_<name>`, image volumes by fingerprint. Every method is
blocking (run it in a thread); a failure leaves nothing half-made.
"""
from __future__ import annotations

import os
from typing import Callable

from corral.storage.drivers.base import StorageDriver, StorageError
from corral.storage.volume import (BLOCK, CONTAINER, CUSTOM, FILESYSTEM, IMAGE, Info, Volume,
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

    def instance_volume(self, vol: str, snap: str | None = None) -> Volume:
        v = Volume(self.name, vol, CONTAINER)
        return v.snapshot(snap) if snap else v

    def image_volume(self, fingerprint: str) -> Volume:
        return Volume(self.name, fingerprint, IMAGE)

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
        empty volume); undone whole on failure."""
        try:
            self.driver.create_volume(vol, fill)
            for snap, sfill in snapshots:
                self.driver.create_volume(vol.snapshot(snap), sfill)
        except BaseException:
            self.driver.delete_volume(vol)
            raise

    # ---- instance volumes -----------------------------------------------------------------------

    def create_instance_from_image(self, vol: str, fingerprint: str) -> str:
        """The instance volume from the pool's image volume (ensure_image first); its mount path."""
        v = self.instance_volume(vol)
        self.driver.create_volume_from_image(v, self.image_volume(fingerprint))
        return self.mount(v)

    def create_instance_empty(self, vol: str) -> str:
        v = self.instance_volume(vol)
        self.driver.create_volume(v, lambda path: os.mkdir(os.path.join(path, "rootfs"), 0o755))
        return self.mount(v)

    def create_instance_from_copy(self, vol: str, src_pool: "Pool", src_vol: str, src_snap: str | None = None,
                                  snapshots=()) -> None:
        """A copy of another instance's volume (or of one of its snapshots), with `snapshots`."""
        self.copy(self.instance_volume(vol), src_pool, src_pool.instance_volume(src_vol, src_snap), snapshots)

    def create_instance_snapshot(self, vol: str, snap: str) -> None:
        self.snapshot(self.instance_volume(vol), snap)

    def delete_instance_snapshot(self, vol: str, snap: str) -> None:
        self.delete_snapshot(self.instance_volume(vol), snap)

    def rename_instance_snapshot(self, vol: str, snap: str, new: str) -> None:
        self.rename_snapshot(self.instance_volume(vol), snap, new)

    def restore_instance(self, vol: str, snap: str) -> None:
        self.restore(self.instance_volume(vol), snap)

    def rename_instance(self, vol: str, new: str) -> None:
        self.rename(self.instance_volume(vol), new)

    def delete_instance(self, vol: str) -> None:
        self.delete(self.instance_volume(vol))

    def has_instance(self, vol: str) -> bool:
        return self.exists(self.instance_volume(vol))

    def has_instance_snapshots(self, vol: str) -> bool:
        return os.path.lexists(self.driver.snapshots_path(self.instance_volume(vol)))

    def instance_path(self, vol: str, snap: str | None = None) -> str:
        """The mount path of an instance volume (or snapshot): metadata.yaml, templates/, rootfs/."""
        return self.mount(self.instance_volume(vol, snap))

    def instance_snapshots_path(self, vol: str) -> str:
        """Where the instance's snapshots are mounted (LXD's data dir links snapshots/<vol> to it)."""
        return self.driver.snapshots_path(self.instance_volume(vol))

    def instance_volume_names(self) -> list[str]:
        return self.driver.list_volumes(CONTAINER)

    # ---- image volumes --------------------------------------------------------------------------

    def has_image(self, fingerprint: str) -> bool:
        path = self.driver.volume_path(self.image_volume(fingerprint))
        return os.path.isdir(os.path.join(path, "rootfs")) and os.path.isfile(os.path.join(path, "metadata.yaml"))

    def create_image(self, fingerprint: str, unpack: Filler) -> None:
        """The image volume: `unpack(dest)` fills a directory that does not exist yet (whose parent
        is on the pool: what an unpack's space budget is measured against)."""
        v = self.image_volume(fingerprint)
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
