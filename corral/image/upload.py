"""An image upload being received: staged in a private build directory, hashed as it arrives,
and bounded by the image size budget (its bytes count against images.max_unpacked_size and the free
space of the image store's disk)."""
from __future__ import annotations

import asyncio
import hashlib
import os
from typing import AsyncIterator

from corral.image import store, unpack


class Upload:
    """Files received from a client, staged in a private build directory, hashed as they arrive
    (sha256 over the files in order: LXD's fingerprint of unified and split images)."""

    def __init__(self, build_dir: str, budget: unpack.Budget | None = None):
        self.dir = build_dir
        self.paths: list[str] = []
        self.size = 0
        self._sha = hashlib.sha256()
        self.budget = budget or unpack.Budget.unlimited()

    async def receive(self, name: str, chunks: AsyncIterator[bytes]) -> str:
        path = os.path.join(self.dir, name)
        f = await asyncio.to_thread(open, path, "xb")
        try:
            buf = bytearray()
            async for chunk in chunks:
                buf += chunk
                if len(buf) >= store.CHUNK:
                    data, buf = bytes(buf), bytearray()
                    await asyncio.to_thread(self._write, f, data)
            if buf:
                await asyncio.to_thread(self._write, f, bytes(buf))
        finally:
            await asyncio.to_thread(f.close)
        self.paths.append(path)
        return path

    def _write(self, f, data: bytes) -> None:
        self.budget.charge(len(data))  # ImageTooLarge: the caller removes the upload
        f.write(data)
        self._sha.update(data)
        self.size += len(data)

    @property
    def vm_split(self) -> bool:
        """A split upload whose second part came as `rootfs.img`: a virtual-machine image (LXD)."""
        return len(self.paths) == 2 and os.path.basename(self.paths[1]) == "rootfs.img"

    @property
    def fingerprint(self) -> str:
        return self._sha.hexdigest()

    def head(self, n: int = 1) -> bytes:
        if not self.paths:
            return b""
        with open(self.paths[0], "rb") as f:
            return f.read(n)

    def read_first(self) -> bytes:
        with open(self.paths[0], "rb") as f:
            return f.read()

    def cleanup(self) -> None:
        if os.path.isdir(self.dir):
            store._rmtree(self.dir)
