"""The `btrfs` driver. The pool is an existing directory on btrfs, a block device, or (like LXD,
when no source is given) a loop file of `size` created under $CORRAL_DIR/disks and mounted at the
pool's directory. Every volume is a subvolume: image volumes are unpacked once, instance volumes
and snapshots are subvolume snapshots (O(1) whatever the image size). Volume `size` uses qgroups.
A VM's volume is a subvolume whose disk file (root.img) is nodatacow (`chattr +C` on the subvolume
before the file is written, as LXD makes its block files); a VM image volume is read-only once made.
"""
from __future__ import annotations

import contextlib
import os
import subprocess

from corral.errors import BadRequest
from corral.storage.drivers.base import BLOCK_FILE, PARTIAL, SUBDIRS, StorageDriver, StorageError, cp_contents, run
from corral.storage.drivers.dir import fs_type
from corral.storage.sizes import parse_size

DEFAULT_LOOP_SIZE = "5GiB"
MOUNT_OPTIONS = "user_subvol_rm_allowed"


def is_subvolume(path: str) -> bool:
    try:
        return os.lstat(path).st_ino == 256 and fs_type(path) == "btrfs"
    except FileNotFoundError:
        return False


def mounted_source(path: str) -> str | None:
    """The device mounted at `path`, or None."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            target = fields[4].replace("\\040", " ")
            if target == path:
                return fields[fields.index("-") + 2]
    return None


class BtrfsDriver(StorageDriver):
    name = "btrfs"
    optimized_images = True
    cheap_snapshots = True

    # ---- pool config ------------------------------------------------------------------------------

    @staticmethod
    def _kind(config: dict[str, str]) -> str:
        source = config.get("source", "")
        if source.startswith("/dev/"):
            return "block"
        if config.get("size"):   # fill_config allows size only for loop files
            return "loop"
        return "dir"

    @classmethod
    def pool_path(cls, name: str, config: dict[str, str], default: str) -> str:
        return default if cls._kind(config) in ("loop", "block") else config["source"]

    @classmethod
    def fill_config(cls, name: str, config: dict[str, str], default: str, disks_dir: str) -> dict[str, str]:
        config = dict(config)
        source = config.get("source", "")
        if not source:
            size = config.get("size") or DEFAULT_LOOP_SIZE
            if parse_size(size) < 16 * 2**20:
                raise BadRequest('Invalid value for "size": a btrfs pool needs at least 16MiB')
            config.update(source=os.path.join(disks_dir, f"{name}.img"), size=size)
        elif source.startswith("/dev/"):
            if config.get("size"):
                raise BadRequest('"size" cannot be set for a btrfs pool on a block device')
        else:
            if config.get("size"):
                raise BadRequest('"size" is only valid for loop-backed pools (no "source")')
            if not os.path.isabs(source):
                raise BadRequest('Invalid "source": expected an absolute path')
            parent = source if os.path.exists(source) else os.path.dirname(source)
            if not os.path.isdir(parent) or fs_type(parent) != "btrfs":
                raise BadRequest(f'Source path "{source}" is not on a btrfs filesystem')
        config.setdefault("btrfs.mount_options", MOUNT_OPTIONS)
        return config

    # ---- pools ------------------------------------------------------------------------------------

    def _mount_opts(self) -> str:
        return self.config.get("btrfs.mount_options") or MOUNT_OPTIONS

    def _device(self) -> str:
        return self.config["source"]

    def create_pool(self) -> None:
        kind = self._kind(self.config)
        if kind == "dir":
            if os.path.isdir(self.path) and os.listdir(self.path):
                raise BadRequest(f'Source path "{self.path}" isn\'t empty')
            if not os.path.exists(self.path):
                run(["btrfs", "subvolume", "create", self.path], "Failed to create the pool subvolume")
            os.chmod(self.path, 0o711)
            self._make_subdirs()
            return
        dev = self._device()
        made_file = False
        try:
            if kind == "loop":
                if os.path.exists(dev):
                    raise BadRequest(f'Loop file "{dev}" already exists')
                os.makedirs(os.path.dirname(dev), mode=0o700, exist_ok=True)
                with open(dev, "wb") as f:
                    made_file = True
                    f.truncate(parse_size(self.config["size"]))
            elif not os.path.exists(dev):
                raise BadRequest(f'Block device "{dev}" doesn\'t exist')
            small = kind == "loop" and parse_size(self.config["size"]) < 256 * 2**20
            run(["mkfs.btrfs", "-f", "-L", self.pool] + (["--mixed"] if small else []) + [dev],
                "Failed to format the pool")
            os.makedirs(self.path, mode=0o711, exist_ok=True)
            self._mount()
            os.chmod(self.path, 0o711)
            self._make_subdirs()
        except BaseException:
            self._umount()
            if made_file:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dev)
            raise

    def _mount(self) -> None:
        opts = self._mount_opts() + (",loop" if self._kind(self.config) == "loop" else "")
        run(["mount", "-t", "btrfs", "-o", opts, self._device(), self.path], "Failed to mount the pool")

    def _umount(self) -> None:
        if mounted_source(self.path):
            run(["umount", self.path], "Failed to unmount the pool")

    def mount(self) -> bool:
        kind = self._kind(self.config)
        if kind == "dir":
            return os.path.isdir(self.path)
        if mounted_source(self.path):
            return True
        if not os.path.exists(self._device()):
            return False
        os.makedirs(self.path, mode=0o711, exist_ok=True)
        self._mount()
        return True

    def delete_pool(self) -> None:
        self._check_empty()
        for sub in SUBDIRS:
            p = os.path.join(self.path, sub)
            if os.path.isdir(p):
                for e in os.listdir(p):
                    self._delete(os.path.join(p, e))
                os.rmdir(p)
        kind = self._kind(self.config)
        if kind == "dir":
            self._delete(self.path)
            return
        self._umount()
        with contextlib.suppress(OSError):
            os.rmdir(self.path)
        if kind == "loop":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._device())

    def update_pool(self, changed: dict[str, str | None]) -> None:
        super().update_pool(changed)
        for k, v in changed.items():
            if k == "btrfs.mount_options" and self._kind(self.config) != "dir":
                opts = _remount_options(self.config.get("btrfs.mount_options") or MOUNT_OPTIONS, v or MOUNT_OPTIONS)
                run(["mount", "-o", f"remount,{opts}", self.path], "Failed to remount the pool")
                # what is mounted now (the next change, or the undo of this one, starts from it)
                self.config = {**{c: x for c, x in self.config.items() if c != k}, **({k: v} if v else {})}
            elif k == "size":
                if self._kind(self.config) != "loop" or not v:
                    raise BadRequest('"size" can only be changed on loop-backed pools')
                new, old = parse_size(v), os.path.getsize(self._device())
                if new < old:
                    raise BadRequest("Pool size cannot be shrunk")
                with open(self._device(), "r+b") as f:
                    f.truncate(new)
                loopdev = mounted_source(self.path)
                if loopdev and loopdev.startswith("/dev/loop"):
                    run(["losetup", "-c", loopdev], "Failed to resize the loop device")
                run(["btrfs", "filesystem", "resize", "max", self.path], "Failed to grow the pool")

    # ---- volumes ----------------------------------------------------------------------------------

    def _new_volume(self, path: str) -> None:
        run(["btrfs", "subvolume", "create", path], "Failed to create subvolume")
        os.chmod(path, 0o711)

    def _prepare_block(self, volume_dir: str) -> None:
        # a disk image in a copy-on-write file fragments: nodatacow, as LXD makes its block files
        subprocess.run(["chattr", "+C", volume_dir], capture_output=True)

    def _seal_image(self, path: str) -> None:
        # a VM image volume is what instances are snapshotted from: read-only, as LXD keeps it
        run(["btrfs", "property", "set", "-ts", path, "ro", "true"], "Failed to make the image volume read-only")

    def _copy(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):
            raise StorageError(f"Volume directory {dst} already exists")
        if is_subvolume(src):
            res = subprocess.run(["btrfs", "subvolume", "snapshot", src, dst], capture_output=True, text=True)
            if res.returncode == 0:
                return
        # Another pool or filesystem: a new subvolume filled by a (reflink where possible) copy.
        tmp = dst + PARTIAL
        self._delete(tmp)
        try:
            self._new_volume(tmp)
            if os.path.isfile(os.path.join(src, BLOCK_FILE)):
                self._prepare_block(tmp)   # before the disk file is written
            cp_contents(src, tmp)
        except BaseException:
            self._delete(tmp)
            # btrfs frees a deleted subvolume's space in the background: wait, so that a failed
            # copy (disk full) leaves the pool as it was before
            subprocess.run(["btrfs", "subvolume", "sync", self.path], capture_output=True, timeout=60)
            raise
        os.rename(tmp, dst)

    def _delete(self, path: str) -> None:
        if not os.path.lexists(path):
            return
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
            return
        if is_subvolume(path):
            res = subprocess.run(["btrfs", "subvolume", "delete", path], capture_output=True, text=True)
            if res.returncode == 0:
                return
        # A plain directory (or a subvolume holding nested ones): remove the subvolumes inside first.
        for root, dirs, _files in os.walk(path):
            for d in list(dirs):
                p = os.path.join(root, d)
                if not os.path.islink(p) and os.lstat(p).st_ino == 256:
                    dirs.remove(d)
                    self._delete(p)
        if is_subvolume(path):
            run(["btrfs", "subvolume", "delete", path], "Failed to delete subvolume")
        else:
            super()._delete(path)

    # ---- quotas -----------------------------------------------------------------------------------

    def check_quota_supported(self) -> None:
        pass

    def _set_quota(self, path: str, size: int | None) -> None:
        if size:
            run(["btrfs", "quota", "enable", self.path], "Failed to enable quotas")
        res = subprocess.run(["btrfs", "qgroup", "limit", str(size) if size else "none", path],
                             capture_output=True, text=True)
        if res.returncode != 0 and size:
            raise StorageError(f"Failed to set the volume size: {res.stderr.strip()}")


def _remount_options(old: str, new: str) -> str:
    """A remount only adds options: the new ones, plus the negation of flags the old set had and the
    new one drops (so a change, or its undo, really takes an option away)."""
    new_opts = [o for o in new.split(",") if o]
    new_names = {o.split("=", 1)[0] for o in new_opts}
    off = []
    for o in (o for o in old.split(",") if o):
        name = o.split("=", 1)[0]
        if name in new_names:
            continue
        if name in ("compress", "compress-force"):
            off.append("compress=no")
        elif "=" not in o:
            off.append(name[2:] if name.startswith("no") else "no" + name)
    return ",".join(off + new_opts)
