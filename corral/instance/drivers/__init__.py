"""Instance drivers by name."""
from __future__ import annotations

from corral.instance.drivers.base import InstanceDriver
from corral.instance.drivers.lxc import LXCDriver

DRIVERS: dict[str, type[InstanceDriver]] = {"lxc": LXCDriver}


def get_driver(name: str) -> type[InstanceDriver]:
    try:
        return DRIVERS[name]
    except KeyError:
        raise ValueError(f'Unknown instance driver "{name}"') from None
