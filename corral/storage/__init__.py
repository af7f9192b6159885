"""Storage: volumes (volume.py), the driver interface over them (drivers/base.py) and its drivers
registered by name here, the pool layer above them (pool.py: instance, image and custom volume
orchestration) and the pools the daemon knows (pools.py). Nothing outside corral/storage/ builds a
pool path: it asks a Pool."""
import functools
import re
import subprocess

from corral.errors import BadRequest
from corral.storage.drivers.base import StorageDriver, StorageError  # noqa: F401
from corral.storage.drivers.btrfs import BtrfsDriver
from corral.storage.drivers.dir import DirDriver
from corral.storage.drivers.fake import FakeDriver

DRIVERS: dict[str, type[StorageDriver]] = {"dir": DirDriver, "btrfs": BtrfsDriver, "fake": FakeDriver}
# Drivers LXD has that cannot run on this kind of host, with the missing piece named.
UNAVAILABLE = {
    "lvm": "the kernel has no device-mapper (LVM unavailable)",
    "zfs": "the kernel has no zfs module",
    "ceph": "no Ceph cluster is configured",
    "cephfs": "no Ceph cluster is configured",
}


def driver_class(name: str) -> type[StorageDriver]:
    if name in DRIVERS:
        return DRIVERS[name]
    if name in UNAVAILABLE:
        raise BadRequest(f'Storage driver "{name}" is not available on this host: {UNAVAILABLE[name]}')
    raise BadRequest("Unknown driver")   # LXD's text


@functools.cache
@functools.cache
def driver_version(name: str) -> str:
    """What GET /1.0 reports as a driver's version (btrfs: the btrfs-progs version, asked once)."""
    if name == "btrfs":
        try:
            out = subprocess.run(["btrfs", "--version"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
        m = re.search(r"v([\d.]+)", out)
        return m.group(1) if m else ""
    return "1"


def supported_drivers() -> list[dict]:
    """environment.storage_supported_drivers, in LXD's shape."""
    return [{"Name": name, "Version": driver_version(name), "Remote": False}
            for name, cls in DRIVERS.items() if not cls.hidden]
