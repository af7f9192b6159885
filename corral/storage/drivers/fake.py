"""A storage driver for unit tests: plain Python copies in a temporary directory, no host tools.
Not registered in DRIVERS (the API never offers it); tests construct it directly."""
from __future__ import annotations

import os
import shutil

from corral.storage.drivers.base import PARTIAL, StorageDriver, StorageError


class FakeDriver(StorageDriver):
    name = "fake"

    def __init__(self, pool: str, path: str, config: dict[str, str]):
        super().__init__(pool, path, config)
        self.calls: list[tuple] = []
        self.sizes: dict[str, int | None] = {}

    def create_pool(self) -> None:
        os.makedirs(self.path, exist_ok=True)
        self._make_subdirs()

    def delete_pool(self) -> None:
        self._check_empty()
        shutil.rmtree(self.path)

    def create_volume(self, path: str) -> None:
        self.calls.append(("create_volume", path))
        os.mkdir(path)

    def copy_tree(self, src: str, dst: str) -> None:
        self.calls.append(("copy_tree", src, dst))
        if os.path.lexists(dst):
            raise StorageError(f"Volume directory {dst} already exists")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copytree(src, dst + PARTIAL, symlinks=True)
        os.rename(dst + PARTIAL, dst)

    def check_size_supported(self) -> None:
        pass

    def set_size(self, path: str, size: int | None) -> None:
        self.sizes[path] = size
