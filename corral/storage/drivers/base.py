"""The storage driver interface. A driver owns the on-disk layout of one pool:

    <pool>/images/<fingerprint>/            unpacked image (metadata.yaml, templates/, rootfs/)
    <pool>/containers/<volume>/             instance volume (metadata.yaml, templates/, rootfs/)
    <pool>/containers-snapshots/<volume>/<snapshot>/
    <pool>/custom/<project>_<volume>/       custom volumes

Every method is blocking (the daemon runs them in worker threads) and leaves no half-made
volume behind when it fails.
"""
from __future__ import annotations

import abc
import os
import shutil
import subprocess

from corral.errors import CorralError


class StorageError(CorralError):
    pass


class StorageDriver(abc.ABC):
    name = ""

    def __init__(self, pool: str, path: str, config: dict[str, str]):
        self.pool = pool
        self.path = path
        self.config = config

    # ---- pools --------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_pool(self) -> None: ...

    @abc.abstractmethod
    def delete_pool(self) -> None: ...

    # ---- layout -------------------------------------------------------------------------------

    def image_dir(self, fingerprint: str) -> str:
        return os.path.join(self.path, "images", fingerprint)

    def instance_dir(self, volume: str) -> str:
        return os.path.join(self.path, "containers", volume)

    def snapshot_dir(self, volume: str, snapshot: str) -> str:
        return os.path.join(self.path, "containers-snapshots", volume, snapshot)

    # ---- volumes ------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_instance_from_image(self, volume: str, fingerprint: str) -> str:
        """Make the instance volume from the pool's unpacked image; returns its directory."""

    @abc.abstractmethod
    def create_instance_empty(self, volume: str) -> str: ...

    @abc.abstractmethod
    def copy_tree(self, src: str, dst: str) -> None:
        """Copy a volume directory (used for copies, snapshots and restores)."""

    def delete_tree(self, path: str) -> None:
        if os.path.lexists(path):
            shutil.rmtree(path)

    def usage(self, path: str) -> int:
        """Bytes used under `path` (du -sb)."""
        if not os.path.exists(path):
            return 0
        out = subprocess.run(["du", "-sb", "--", path], capture_output=True, text=True)
        try:
            return int(out.stdout.split()[0])
        except (IndexError, ValueError):
            return 0
