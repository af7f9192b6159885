"""The `dir` driver: plain directories. Copies use reflinks where the filesystem has them."""
from __future__ import annotations

import os
import subprocess

from corral.storage.drivers.base import StorageDriver, StorageError

SUBDIRS = ("images", "containers", "containers-snapshots", "custom", "custom-snapshots")


class DirDriver(StorageDriver):
    name = "dir"

    def create_pool(self) -> None:
        os.makedirs(self.path, exist_ok=True)
        os.chmod(self.path, 0o711)
        for sub in SUBDIRS:
            os.makedirs(os.path.join(self.path, sub), exist_ok=True)
            os.chmod(os.path.join(self.path, sub), 0o711)

    def delete_pool(self) -> None:
        for sub in SUBDIRS:
            p = os.path.join(self.path, sub)
            if os.path.isdir(p) and os.listdir(p):
                raise StorageError(f"Storage pool directory {p} is not empty")
        for sub in SUBDIRS:
            p = os.path.join(self.path, sub)
            if os.path.isdir(p):
                os.rmdir(p)

    def copy_tree(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):
            raise StorageError(f"Volume directory {dst} already exists")
        os.makedirs(os.path.dirname(dst), mode=0o711, exist_ok=True)
        tmp = dst + ".partial"
        self.delete_tree(tmp)
        res = subprocess.run(["cp", "-a", "--reflink=auto", "--", src, tmp], capture_output=True, text=True)
        if res.returncode != 0:
            self.delete_tree(tmp)
            raise StorageError(f"Failed to copy {src}: {res.stderr.strip()}")
        os.rename(tmp, dst)

    def create_instance_from_image(self, volume: str, fingerprint: str) -> str:
        src, dst = self.image_dir(fingerprint), self.instance_dir(volume)
        if not os.path.isdir(os.path.join(src, "rootfs")):
            raise StorageError(f"Image {fingerprint} is not unpacked in pool {self.pool}")
        self.copy_tree(src, dst)
        os.chmod(dst, 0o711)
        return dst

    def create_instance_empty(self, volume: str) -> str:
        dst = self.instance_dir(volume)
        if os.path.lexists(dst):
            raise StorageError(f"Volume directory {dst} already exists")
        os.makedirs(os.path.join(dst, "rootfs"), mode=0o755)
        os.chmod(dst, 0o711)
        return dst
