"""The `dir` driver: plain directories. Copies use reflinks where the filesystem has them (XFS,
btrfs), so an instance made from an unpacked image shares its data blocks; with rsync.bwlimit set
they go through rsync at that rate, as LXD's dir driver copies. Volume `size` uses XFS
project quotas when the filesystem is XFS mounted with project quotas; otherwise it is refused.
An instance volume made from an image is a ready copy made in the background (storage/spares.py)."""
from __future__ import annotations

import os
import subprocess

from corral.errors import BadRequest
from corral.storage import spares
from corral.storage.drivers.base import PARTIAL, SUBDIRS, StorageDriver, StorageError, cp_reflink, run
from corral.storage.volume import IMAGE, Volume


def fs_type(path: str) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True).stdout.strip()


def mount_point(path: str) -> str:
    return subprocess.run(["stat", "-c", "%m", path], capture_output=True, text=True).stdout.strip()


def rsync_copy(src: str, dst: str, bwlimit: str) -> None:
    """A local copy with rsync at most `bwlimit` (rsync.bwlimit, what rsync's --bwlimit takes), as
    LXD's dir driver copies volumes (rsync -a -HA --sparse --devices --numeric-ids --xattrs)."""
    res = subprocess.run(["rsync", "-a", "-HA", "--sparse", "--devices", "--numeric-ids", "--xattrs",
                          f"--bwlimit={bwlimit}", "--", src.rstrip("/") + "/", dst],
                         capture_output=True, text=True)
    if res.returncode != 0:
        err = res.stderr.strip().splitlines()
        raise StorageError(f"Failed to copy {src} with rsync: {err[-1] if err else res.returncode}")


class DirDriver(StorageDriver):
    name = "dir"

    def create_pool(self) -> None:
        if os.path.lexists(self.path) and not os.path.isdir(self.path):
            raise BadRequest(f'Source path "{self.path}" isn\'t a directory')
        if os.path.isdir(self.path) and [e for e in os.listdir(self.path) if e not in ("lost+found",)]:
            raise BadRequest(f'Source path "{self.path}" isn\'t empty')
        os.makedirs(self.path, exist_ok=True)
        os.chmod(self.path, 0o711)
        self._make_subdirs()

    def delete_pool(self) -> None:
        self._check_empty()
        spares.drop_all(self)
        for sub in SUBDIRS:
            p = os.path.join(self.path, sub)
            if os.path.isdir(p):
                for e in os.listdir(p):   # unpacked images and leftovers of failed copies
                    self._delete(os.path.join(p, e))
                os.rmdir(p)

    def create_volume_from_image(self, vol: Volume, image: Volume) -> None:
        """The image's ready copy renamed into place when there is one, else a copy made now; then
        the next ready copy is made in the background."""
        src = self.volume_path(image)
        dst = self.volume_path(vol)
        if not os.path.isdir(os.path.join(src, "rootfs")) or os.path.lexists(dst):
            super().create_volume_from_image(vol, image)   # its errors
            return
        self._parent_dir(dst)
        if spares.take(self, image.name, dst):
            self._set_mode(vol, dst)
        else:
            super().create_volume_from_image(vol, image)
        spares.refill(self, image.name, src)

    def delete_volume(self, vol: Volume) -> None:
        if vol.type == IMAGE and not vol.is_snapshot:
            spares.drop(self, vol.name)
        super().delete_volume(vol)

    def _new_volume(self, path: str) -> None:
        os.mkdir(path, 0o711)

    def _copy(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):
            raise StorageError(f"Volume directory {dst} already exists")
        tmp = dst + PARTIAL
        self._delete(tmp)
        try:
            bwlimit = self.config.get("rsync.bwlimit") or "0"
            if bwlimit != "0":
                rsync_copy(src, tmp, bwlimit)
            else:
                cp_reflink(src, tmp)
        except BaseException:
            self._delete(tmp)
            raise
        os.rename(tmp, dst)

    # ---- quotas: XFS project quotas -------------------------------------------------------------

    def _quota_mount(self) -> str:
        if fs_type(self.path) != "xfs":
            raise BadRequest('Volume "size" is not supported by the dir driver on this filesystem '
                             '(needs XFS with project quotas)')
        mnt = mount_point(self.path)
        state = subprocess.run(["xfs_quota", "-x", "-c", "state -p", mnt], capture_output=True, text=True).stdout
        if "Enforcement: ON" not in state:
            raise BadRequest('Volume "size" is not supported: the XFS filesystem of this dir pool is not '
                             'mounted with project quotas (prjquota)')
        return mnt

    def check_quota_supported(self) -> None:
        self._quota_mount()

    def _set_quota(self, path: str, size: int | None) -> None:
        mnt = self._quota_mount()
        project = os.stat(path).st_ino & 0x7FFFFFFF or 1
        run(["xfs_quota", "-x", "-c", f"project -s -p {path} {project}", mnt], "Failed to set the quota project")
        run(["xfs_quota", "-x", "-c", f"limit -p bhard={size or 0} {project}", mnt], "Failed to set the quota")
