"""Instance drivers by name."""
from __future__ import annotations

from corral.instance.drivers.base import InstanceDriver
from corral.instance.drivers.fake import FakeDriver
from corral.instance.drivers.lxc import LXCDriver

# "fake": in memory, runs nothing (tests and `corrald --mock`, which maps every name onto it).
DRIVERS: dict[str, type[InstanceDriver]] = {"lxc": LXCDriver, "fake": FakeDriver}


def get_driver(name: str) -> type[InstanceDriver]:
    try:
        return DRIVERS[name]
    except KeyError:
        raise ValueError(f'Unknown instance driver "{name}"') from None
