"""The storage driver interface (LXD's drivers.Driver): every operation takes a Volume
(corral/storage/volume.py). A driver owns the on-disk layout of one pool; where a volume lives is
its business alone (`volume_path` is for corral/storage/ only):

    <pool>/images/<fingerprint>/            image volume (metadata.yaml, templates/, rootfs/)
    <pool>/containers/<volume>/             instance volume (metadata.yaml, templates/, rootfs/)
    <pool>/containers-snapshots/<volume>/<snapshot>/
    <pool>/custom/<project>_<volume>/       custom volumes (a block volume: its root.img)
    <pool>/custom-snapshots/<project>_<volume>/<snapshot>/
    <pool>/virtual-machines/<volume>/       VM instance volume: its config (metadata.yaml, templates/,
                                            backup.yaml, agent files) with the disk root.img inside
    <pool>/virtual-machines-snapshots/<volume>/<snapshot>/
    <pool>/images/<fingerprint>/            a VM image volume: metadata.yaml, templates/, root.img

A driver implements the host primitives (`_new_volume`, `_copy`, `_delete`, quotas); the volume
operations here are built on them. Every method is blocking (the daemon runs them in worker threads)
and leaves no half-made volume behind when it fails: copies go to `<dst>.partial` and are renamed
into place at the end, so a crash leaves only `*.partial` names the start-up reconciliation removes.
"""
from __future__ import annotations

import abc
import os
import shutil
import subprocess
from typing import Callable

from corral.errors import BadRequest
from corral.storage import vmdisk
from corral.storage.errors import StorageError  # noqa: F401 (imported from here by its users)
from corral.storage.perms import IMAGE_MODE, KIND_MODE, VOLUME_MODE
from corral.storage.sizes import parse_size
from corral.storage.volume import BLOCK, CONTAINER, CUSTOM, DEFAULT_BLOCK_SIZE, IMAGE, VM, Info, Volume

SUBDIRS = ("images", "containers", "containers-snapshots", "custom", "custom-snapshots", "virtual-machines",
           "virtual-machines-snapshots")
PARTIAL = ".partial"
BLOCK_FILE = "root.img"     # a block volume's disk, in its volume directory (as LXD's dir driver keeps it)
TOPS = {IMAGE: ("images", None), CONTAINER: ("containers", "containers-snapshots"),
        CUSTOM: ("custom", "custom-snapshots"), VM: ("virtual-machines", "virtual-machines-snapshots")}


def run(cmd: list[str], what: str) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise StorageError(f"{what}: {msg[-1] if msg else 'exit status %d' % res.returncode}")
    return res.stdout


def block_size(vol: Volume) -> int:
    """The size of a block volume: its "size", else LXD's default (the pool's volume.size is
    already in the volume's config when the pool layer made it). A VM's disk: rounded up to 8 KiB."""
    size = parse_size(vol.config.get("size") or DEFAULT_BLOCK_SIZE) or parse_size(DEFAULT_BLOCK_SIZE)
    return vmdisk.round_size(size) if vol.type == VM else size


class StorageDriver(abc.ABC):
    name = ""
    # Image volumes kept in the pool and listed by the API (LXD's "optimized images").
    optimized_images = False
    cheap_snapshots = False
    # Not offered by GET /1.0 (the fake driver of tests and of the daemon's mock mode)
    hidden = False
    # Modes of the kind directories and of instance volumes (storage/perms.py)
    kind_mode, volume_mode, image_mode = KIND_MODE, VOLUME_MODE, IMAGE_MODE
    root_only = True    # volumes reachable by root only, tightened at start (storage/perms.py)

    def __init__(self, pool: str, path: str, config: dict[str, str]):
        self.pool = pool
        self.path = path
        self.config = config

    def info(self) -> Info:
        return Info(name=self.name, optimized_images=self.optimized_images, cheap_snapshots=self.cheap_snapshots)

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
            os.makedirs(os.path.join(self.path, sub), mode=self.kind_mode, exist_ok=True)
            os.chmod(os.path.join(self.path, sub), self.kind_mode)   # root only: see storage/perms.py

    def _check_empty(self) -> None:
        for sub in SUBDIRS[1:]:   # unpacked images are a cache, not volumes in use
            p = os.path.join(self.path, sub)
            if os.path.isdir(p) and [e for e in os.listdir(p) if not e.endswith(PARTIAL)]:
                raise StorageError(f"Storage pool directory {p} is not empty")

    def resources(self) -> dict:
        st = os.statvfs(self.path)
        return {"space": {"used": (st.f_blocks - st.f_bfree) * st.f_frsize, "total": st.f_blocks * st.f_frsize},
                "inodes": {"used": st.f_files - st.f_ffree, "total": st.f_files}}

    # ---- layout (corral/storage/ only) -----------------------------------------------------------

    def volume_path(self, vol: Volume) -> str:
        """Where a volume (or a snapshot) is mounted: for these drivers, where it lives."""
        top, snaps = TOPS[vol.type]
        if vol.is_snapshot:
            if snaps is None:
                raise BadRequest(f"Volumes of type {vol.type} have no snapshots")
            return os.path.join(self.path, snaps, vol.parent_name, vol.snapshot_name)
        return os.path.join(self.path, top, vol.name)

    def snapshots_path(self, vol: Volume) -> str:
        """The directory holding a volume's snapshots."""
        return os.path.dirname(self.volume_path(vol.snapshot("x")))

    def block_path(self, vol: Volume) -> str:
        return os.path.join(self.volume_path(vol), BLOCK_FILE)

    def has_volume(self, vol: Volume) -> bool:
        return os.path.lexists(self.volume_path(vol))

    def list_volumes(self, vtype: str) -> list[str]:
        """Names of the volumes of a type present in the pool (no partial copies)."""
        try:
            names = sorted(os.listdir(os.path.join(self.path, TOPS[vtype][0])))
        except FileNotFoundError:
            return []
        return [n for n in names if not n.endswith(PARTIAL) and not n.startswith(".")]

    def list_snapshots(self, vol: Volume) -> list[str]:
        try:
            return sorted(os.listdir(self.snapshots_path(vol)))
        except FileNotFoundError:
            return []

    # ---- host primitives (each driver) -----------------------------------------------------------

    @abc.abstractmethod
    def _new_volume(self, path: str) -> None:
        """An empty volume at `path` (a directory or a subvolume); its parent exists."""

    @abc.abstractmethod
    def _copy(self, src: str, dst: str) -> None:
        """Copy a volume's tree to `dst`, which must not exist (`src` may be in another pool)."""

    def _delete(self, path: str) -> None:
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)

    def _snapshot(self, src: str, dst: str) -> None:
        self._copy(src, dst)

    def _prepare_block(self, volume_dir: str) -> None:
        """Called before a block volume's disk file is written (btrfs: no copy-on-write)."""

    def _seal_image(self, path: str) -> None:
        """Called once a VM image volume is in place: nothing changes it any more (btrfs: read-only)."""

    def _mode(self, vol: Volume) -> int | None:
        if vol.type == IMAGE:
            return self.image_mode
        if vol.type in (CONTAINER, VM):
            return self.volume_mode
        return None   # a custom volume's root keeps its mode (the mount's root inside the instance)

    def _parent_dir(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), mode=self.kind_mode, exist_ok=True)

    # ---- volumes --------------------------------------------------------------------------------

    def create_volume(self, vol: Volume, filler: Callable[[str], object] | None = None) -> None:
        """A new volume. `filler(path)` fills a filesystem volume (an image's unpack, a backup's
        extraction) before the volume is in place; a block volume gets its disk file of `size` (a
        VM image volume: the unpack writes it)."""
        dst = self.volume_path(vol)
        if os.path.lexists(dst):
            raise StorageError(f"Volume {vol.name} already exists in pool {self.pool}")
        self._parent_dir(dst)
        if filler is None and vol.content_type != BLOCK:
            self._new_volume(dst)
            self._set_mode(vol, dst)
            return
        tmp = dst + PARTIAL
        self._delete(tmp)
        try:
            self._new_volume(tmp)
            if vol.content_type == BLOCK and vol.type == IMAGE:
                self._prepare_block(tmp)
            elif vol.content_type == BLOCK:
                self._write_block(tmp, block_size(vol))
            if filler is not None:
                filler(tmp)
            self._set_mode(vol, tmp)
            os.rename(tmp, dst)
        except BaseException:
            self._delete(tmp)
            raise
        if vol.content_type == BLOCK and vol.type == IMAGE:
            self._seal_image(dst)

    def _set_mode(self, vol: Volume, path: str) -> None:
        mode = self._mode(vol)
        if mode is not None:
            os.chmod(path, mode)

    def _write_block(self, volume_dir: str, size: int) -> None:
        self._prepare_block(volume_dir)
        path = os.path.join(volume_dir, BLOCK_FILE)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def create_volume_from_image(self, vol: Volume, image: Volume) -> None:
        """An instance volume from the pool's image volume. A VM's: the image volume copied (btrfs:
        a snapshot of it), its disk then grown to the volume's "size" (the pool layer checked that
        it is not smaller than the image's)."""
        src = self.volume_path(image)
        if vol.type == VM:
            if not os.path.isfile(os.path.join(src, BLOCK_FILE)):
                raise StorageError(f"Image {image.name} is not unpacked in pool {self.pool}")
            self.create_volume_from_copy(vol, image, self)
            try:
                vmdisk.grow(self.block_path(vol), block_size(vol), shrink_ok=True)
            except BaseException:
                self.delete_volume(vol)
                raise
            return
        if not os.path.isdir(os.path.join(src, "rootfs")):
            raise StorageError(f"Image {image.name} is not unpacked in pool {self.pool}")
        self.create_volume_from_copy(vol, image, self)

    def create_volume_from_copy(self, vol: Volume, src: Volume, src_driver: "StorageDriver",
                                snapshots: tuple[str, ...] | list[str] = ()) -> None:
        """A copy of `src` (a volume or a snapshot, maybe in another pool) with copies of the
        source's `snapshots` (names); undone whole on failure."""
        dst = self.volume_path(vol)
        if os.path.lexists(dst):
            raise StorageError(f"Volume {vol.name} already exists in pool {self.pool}")
        made = []
        try:
            for s in snapshots:
                sdst = self.volume_path(vol.snapshot(s))
                self._parent_dir(sdst)
                self._copy(src_driver.volume_path(src.parent().snapshot(s)), sdst)
                made.append(sdst)
            self._parent_dir(dst)
            self._copy(src_driver.volume_path(src), dst)
            self._set_mode(vol, dst)
        except BaseException:
            for p in reversed(made):
                self._delete(p)
            if snapshots:
                self._delete_if_empty(self.snapshots_path(vol))
            raise

    def refresh_volume(self, vol: Volume, src: Volume, src_driver: "StorageDriver",
                       snapshots: tuple[str, ...] | list[str] = ()) -> None:
        """Bring an existing copy up to date: the missing snapshots, then the volume itself."""
        have = set(self.list_snapshots(vol))
        for s in snapshots:
            if s not in have:
                sdst = self.volume_path(vol.snapshot(s))
                self._parent_dir(sdst)
                self._copy(src_driver.volume_path(src.parent().snapshot(s)), sdst)
        dst = self.volume_path(vol)
        new = dst + ".refresh-new"
        self._delete(new)
        self._copy(src_driver.volume_path(src), new)
        self._swap(dst, new)

    def create_volume_snapshot(self, snap: Volume) -> None:
        src, dst = self.volume_path(snap.parent()), self.volume_path(snap)
        if os.path.lexists(dst):
            raise StorageError(f"Snapshot {snap.name} already exists in pool {self.pool}")
        self._parent_dir(dst)
        self._snapshot(src, dst)

    def delete_volume_snapshot(self, snap: Volume) -> None:
        self._delete(self.volume_path(snap))
        self._delete_if_empty(self.snapshots_path(snap))

    def rename_volume_snapshot(self, snap: Volume, new: str) -> None:
        self._move(self.volume_path(snap), self.volume_path(snap.snapshot(new)))

    def restore_volume(self, vol: Volume, snap: str) -> None:
        """The volume's content replaced by its snapshot's (the live volume is swapped, so a crash
        leaves either the old or the new one: reconcile puts a `.restore-old` back)."""
        live = self.volume_path(vol)
        new = live + ".restore-new"
        self._delete(new)
        self._delete(live + ".restore-old")
        self._copy(self.volume_path(vol.snapshot(snap)), new)
        self._swap(live, new)

    def _swap(self, live: str, new: str) -> None:
        old = live + ".restore-old"
        self._delete(old)
        os.rename(live, old)
        os.rename(new, live)
        self._delete(old)

    def rename_volume(self, vol: Volume, new: str) -> None:
        """Rename a volume and its snapshots (undone if the second move fails)."""
        renamed = vol.renamed(new)
        a, b = self.volume_path(vol), self.volume_path(renamed)
        self._move(a, b)
        if vol.type == IMAGE:
            return
        sa, sb = self.snapshots_path(vol), self.snapshots_path(renamed)
        if os.path.lexists(sa):
            try:
                self._move(sa, sb)
            except BaseException:
                os.rename(b, a)
                raise

    def _move(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):
            raise StorageError(f"Volume {os.path.basename(dst)} already exists in pool {self.pool}")
        self._parent_dir(dst)
        os.rename(src, dst)

    def delete_volume(self, vol: Volume) -> None:
        """The volume and its snapshots (nothing when it is not there)."""
        if vol.type != IMAGE:
            self._delete(self.snapshots_path(vol))
        self._delete(self.volume_path(vol))

    def remove_leftover(self, path: str) -> None:
        """Remove what the start-up reconciliation found in the pool's tree and no record names."""
        if os.path.commonpath([os.path.realpath(os.path.dirname(path)), os.path.realpath(self.path)]) \
                != os.path.realpath(self.path):
            raise StorageError(f"{path} is not in pool {self.pool}")
        self._delete(path)

    def _delete_if_empty(self, path: str) -> None:
        try:
            if not os.listdir(path):
                self._delete(path)
        except FileNotFoundError:
            pass

    def mount_volume(self, vol: Volume) -> str:
        """Make the volume reachable and return its mount path (these drivers: where it lives)."""
        path = self.volume_path(vol)
        if not os.path.lexists(path):
            raise StorageError(f"Volume {vol.name} does not exist in pool {self.pool}")
        return path

    def unmount_volume(self, vol: Volume) -> None:
        """Nothing to do for drivers whose volumes are directories."""

    # ---- quotas and usage -----------------------------------------------------------------------

    def set_volume_quota(self, vol: Volume, size: int | None) -> None:
        """Filesystem volumes: limit to `size` bytes (None: no limit). Block volumes: grow the disk
        (LXD refuses to shrink one; no size leaves it as it is)."""
        if vol.type == VM:
            self.grow_disk(vol, size)
            return
        if vol.content_type == BLOCK:
            if not size:
                return
            path = self.block_path(vol)
            if size < os.path.getsize(path):
                raise StorageError("Block volumes cannot be shrunk: Cannot be shrunk")
            os.truncate(path, size)
            return
        self._set_quota(self.volume_path(vol), size)

    def grow_disk(self, vol: Volume, size: int | None) -> bool:
        """A VM's disk grown to `size` (rounded up to 8 KiB, a GPT's backup header moved to the new
        end); a smaller size is refused with LXD's error; no size leaves it. True when it grew."""
        if not size:
            return False
        return vmdisk.grow(self.block_path(vol), size)

    def _set_quota(self, path: str, size: int | None) -> None:
        if size:
            raise BadRequest(f'Volume "size" is not supported by the {self.name} driver on this filesystem')

    def check_quota_supported(self) -> None:
        raise BadRequest(f'Volume "size" is not supported by the {self.name} driver on this filesystem')

    def get_volume_usage(self, vol: Volume) -> int:
        """Bytes used by a volume (du -sb, no mount needed). A VM's: the blocks allocated to its disk
        and config files (a sparse disk costs what is written). Block custom volumes: LXD's "Not
        supported"."""
        if vol.type == VM:
            return vmdisk.allocated(self.volume_path(vol))
        if vol.content_type == BLOCK:
            raise StorageError("Not supported")
        return du(self.volume_path(vol))


def du(path: str) -> int:
    if not os.path.exists(path):
        return 0
    out = subprocess.run(["du", "-sb", "--", path], capture_output=True, text=True)
    try:
        return int(out.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


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
