"""The storage driver interface. A driver owns the on-disk layout of one pool:

    <pool>/images/<fingerprint>/            unpacked image (metadata.yaml, templates/, rootfs/)
    <pool>/containers/<volume>/             instance volume (metadata.yaml, templates/, rootfs/)
    <pool>/containers-snapshots/<volume>/<snapshot>/
    <pool>/custom/<project>_<volume>/       custom volumes
    <pool>/custom-snapshots/<project>_<volume>/<snapshot>/

Every method is blocking (the daemon runs them in worker threads) and leaves no half-made
volume behind when it fails: copies go to `<dst>.partial` and are renamed into place at the end,
so a crash leaves only `*.partial` names the start-up reconciliation removes.
"""
from __future__ import annotations

import abc
import os
import shutil
import subprocess
from typing import Callable

from corral.errors import BadRequest, CorralError
from corral.storage.perms import KIND_MODE, VOLUME_MODE

SUBDIRS = ("images", "containers", "containers-snapshots", "custom", "custom-snapshots")
PARTIAL = ".partial"


class StorageError(CorralError):
    pass


def run(cmd: list[str], what: str) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise StorageError(f"{what}: {msg[-1] if msg else 'exit status %d' % res.returncode}")
    return res.stdout


class StorageDriver(abc.ABC):
    name = ""
    # Image volumes kept in the pool and listed by the API (LXD's "optimized images").
    optimized_images = False

    def __init__(self, pool: str, path: str, config: dict[str, str]):
        self.pool = pool
        self.path = path
        self.config = config

    @classmethod
    def pool_path(cls, name: str, config: dict[str, str], default: str) -> str:
        """Where the pool's tree lives (its mount point for drivers that mount)."""
        return config.get("source") or default

    @classmethod
    def fill_config(cls, name: str, config: dict[str, str], default: str, disks_dir: str) -> dict[str, str]:
        """Validate a new pool's config and fill in the defaults (as LXD records them)."""
        config = dict(config)
        config.setdefault("source", default)
        return config

    # ---- pools --------------------------------------------------------------------------------

    @abc.abstractmethod
    def create_pool(self) -> None: ...

    @abc.abstractmethod
    def delete_pool(self) -> None: ...

    def mount(self) -> bool:
        """Make the pool available (at daemon start); False when it cannot be."""
        return os.path.isdir(self.path)

    def update_pool(self, changed: dict[str, str | None]) -> None:
        """Apply changed pool config keys (None: unset). Refuse what cannot change."""
        for k in changed:
            if k == "source":
                raise BadRequest('Pool "source" cannot be changed')

    def _make_subdirs(self) -> None:
        for sub in SUBDIRS:
            os.makedirs(os.path.join(self.path, sub), mode=KIND_MODE, exist_ok=True)
            os.chmod(os.path.join(self.path, sub), KIND_MODE)   # root only: see storage/perms.py

    def _check_empty(self) -> None:
        for sub in SUBDIRS[1:]:   # unpacked images are a cache, not volumes in use
            p = os.path.join(self.path, sub)
            if os.path.isdir(p) and [e for e in os.listdir(p) if not e.endswith(PARTIAL)]:
                raise StorageError(f"Storage pool directory {p} is not empty")

    # ---- layout -------------------------------------------------------------------------------

    def image_dir(self, fingerprint: str) -> str:
        return os.path.join(self.path, "images", fingerprint)

    def instance_dir(self, volume: str) -> str:
        return os.path.join(self.path, "containers", volume)

    def snapshot_dir(self, volume: str, snapshot: str) -> str:
        return os.path.join(self.path, "containers-snapshots", volume, snapshot)

    def custom_dir(self, volume: str) -> str:
        return os.path.join(self.path, "custom", volume)

    def custom_snapshot_dir(self, volume: str, snapshot: str) -> str:
        return os.path.join(self.path, "custom-snapshots", volume, snapshot)

    # ---- volumes ------------------------------------------------------------------------------

    def unpack_image(self, fingerprint: str, unpack: Callable[[str], object]) -> None:
        """Make the image volume: `unpack(dest)` fills a directory that must not exist yet."""
        unpack(self.image_dir(fingerprint))

    @abc.abstractmethod
    def create_volume(self, path: str) -> None:
        """An empty volume at `path` (a directory or a subvolume)."""

    @abc.abstractmethod
    def copy_tree(self, src: str, dst: str) -> None:
        """Copy a volume (copies, snapshots, restores; `src` may be in another pool)."""

    def create_instance_from_image(self, volume: str, fingerprint: str) -> str:
        """Make the instance volume from the pool's unpacked image; returns its directory."""
        src, dst = self.image_dir(fingerprint), self.instance_dir(volume)
        if not os.path.isdir(os.path.join(src, "rootfs")):
            raise StorageError(f"Image {fingerprint} is not unpacked in pool {self.pool}")
        self.copy_tree(src, dst)
        os.chmod(dst, VOLUME_MODE)
        return dst

    def create_instance_empty(self, volume: str) -> str:
        dst = self.instance_dir(volume)
        if os.path.lexists(dst):
            raise StorageError(f"Volume directory {dst} already exists")
        os.makedirs(os.path.dirname(dst), mode=KIND_MODE, exist_ok=True)
        self.create_volume(dst)
        os.makedirs(os.path.join(dst, "rootfs"), mode=0o755)
        os.chmod(dst, VOLUME_MODE)
        return dst

    def delete_tree(self, path: str) -> None:
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)

    def rename(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):
            raise StorageError(f"Volume directory {dst} already exists")
        os.makedirs(os.path.dirname(dst), mode=KIND_MODE, exist_ok=True)
        os.rename(src, dst)

    # ---- quotas and usage ---------------------------------------------------------------------

    def set_size(self, path: str, size: int | None) -> None:
        """Limit a volume to `size` bytes (None: no limit)."""
        if size:
            raise BadRequest(f'Volume "size" is not supported by the {self.name} driver on this filesystem')

    def check_size_supported(self) -> None:
        raise BadRequest(f'Volume "size" is not supported by the {self.name} driver on this filesystem')

    def usage(self, path: str) -> int:
        """Bytes used under `path` (du -sb, no mount needed)."""
        if not os.path.exists(path):
            return 0
        out = subprocess.run(["du", "-sb", "--", path], capture_output=True, text=True)
        try:
            return int(out.stdout.split()[0])
        except (IndexError, ValueError):
            return 0

    def resources(self) -> dict:
        st = os.statvfs(self.path)
        return {"space": {"used": (st.f_blocks - st.f_bfree) * st.f_frsize, "total": st.f_blocks * st.f_frsize},
                "inodes": {"used": st.f_files - st.f_ffree, "total": st.f_files}}


def cp_reflink(src: str, dst: str) -> None:
    """cp -a with reflinks where the filesystem has them (XFS, btrfs); dst must not exist."""
    res = subprocess.run(["cp", "-a", "--reflink=auto", "--", src, dst], capture_output=True, text=True)
    if res.returncode != 0:
        err = res.stderr.strip().splitlines()
        raise StorageError(f"Failed to copy {src}: {err[-1] if err else res.returncode}")


def cp_contents(src: str, dst: str) -> None:
    """Copy the contents of src into the existing directory dst (reflinks where possible)."""
    res = subprocess.run(["cp", "-a", "--reflink=auto", "--", src + "/.", dst], capture_output=True, text=True)
    if res.returncode != 0:
        err = res.stderr.strip().splitlines()
        raise StorageError(f"Failed to copy {src}: {err[-1] if err else res.returncode}")
    st = os.stat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, st.st_mode & 0o7777)
