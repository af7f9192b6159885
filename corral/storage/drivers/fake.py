"""The `fake` storage driver: plain Python copies in the pool's directory, no host tools, no mounts,
no chown, no subvolumes, so it runs as an unprivileged user (unit tests, the daemon's mock mode).
Registered by name but not offered in GET /1.0's storage_supported_drivers.

Its volumes are the calling user's own (0700 where the real drivers make them root's only). Volume
"size" is recorded, not enforced (`sizes`); block volumes (and VMs' disks) are sparse files of their
size, copied sparse."""
from __future__ import annotations

import os
import shutil

from corral.storage import vmdisk
from corral.storage.drivers.base import PARTIAL, SUBDIRS, StorageDriver, StorageError


def _copy_file(src: str, dst: str) -> str:
    """shutil.copy2, keeping the holes of sparse files (a VM's 10GiB disk)."""
    st = os.lstat(src)
    if st.st_blocks * 512 < st.st_size:
        vmdisk.sparse_copy(src, dst)
        shutil.copystat(src, dst)
        return dst
    return shutil.copy2(src, dst)


class FakeDriver(StorageDriver):
    name = "fake"
    hidden = True
    cheap_snapshots = True
    kind_mode = volume_mode = image_mode = 0o700
    root_only = False   # storage/perms.py's tightening (chown to root) is not for it

    def __init__(self, pool: str, path: str, config: dict[str, str]):
        super().__init__(pool, path, config)
        self.calls: list[tuple] = []
        self.sizes: dict[str, int | None] = {}

    def create_pool(self) -> None:
        if os.path.isdir(self.path) and os.listdir(self.path):
            raise StorageError(f'Source path "{self.path}" isn\'t empty')
        os.makedirs(self.path, exist_ok=True)
        self._make_subdirs()

    def delete_pool(self) -> None:
        self._check_empty()
        for sub in SUBDIRS:
            shutil.rmtree(os.path.join(self.path, sub), ignore_errors=True)
        if os.path.isdir(self.path) and not os.listdir(self.path):
            os.rmdir(self.path)

    def _new_volume(self, path: str) -> None:
        self.calls.append(("new", os.path.relpath(path, self.path)))
        os.mkdir(path, 0o700)

    def _copy(self, src: str, dst: str) -> None:
        self.calls.append(("copy", src, os.path.relpath(dst, self.path)))
        if os.path.lexists(dst):
            raise StorageError(f"Volume directory {dst} already exists")
        shutil.rmtree(dst + PARTIAL, ignore_errors=True)
        try:
            shutil.copytree(src, dst + PARTIAL, symlinks=True, copy_function=_copy_file)
        except BaseException:
            shutil.rmtree(dst + PARTIAL, ignore_errors=True)
            raise
        os.rename(dst + PARTIAL, dst)

    def check_quota_supported(self) -> None:
        pass

    def _set_quota(self, path: str, size: int | None) -> None:
        self.sizes[os.path.relpath(path, self.path)] = size
