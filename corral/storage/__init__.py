"""Storage: pool drivers behind one interface, and the pools the daemon knows."""
from corral.errors import BadRequest
from corral.storage.drivers.base import StorageDriver, StorageError  # noqa: F401
from corral.storage.drivers.dir import DirDriver

DRIVERS: dict[str, type[StorageDriver]] = {"dir": DirDriver}
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
    raise BadRequest(f'Invalid storage driver "{name}"')
