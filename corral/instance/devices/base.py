"""The device interface. A device turns its LXD config into what the instance driver applies
(liblxc config items and mounts) and does its host-side work around start and stop.

Each type is a small class in this package, registered in __init__.DEVICES.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable

from corral.errors import BadRequest, NotImplementedFeature


@dataclass
class RunConfig:
    """What one started device asks of the instance driver."""
    lxc: list[str] = field(default_factory=list)                    # raw liblxc config lines
    mounts: list[tuple[str, str, str]] = field(default_factory=list)  # (host source, path inside, options)
    post_start: list[Callable[[int], None]] = field(default_factory=list)  # run with the init pid


class Device(abc.ABC):
    """One device of one instance. `inst` is None when validating a profile's device."""

    type = ""
    hotpluggable = False

    def __init__(self, daemon, inst, name: str, config: dict[str, str]):
        self.d = daemon
        self.inst = inst
        self.name = name
        self.config = config

    def _bad(self, msg: str) -> BadRequest:
        return BadRequest(f'Device "{self.name}": {msg}')

    @abc.abstractmethod
    def validate(self) -> None:
        """Raise BadRequest naming the device and key when the config is wrong."""

    async def start(self) -> RunConfig:
        """Host work before the instance starts; what the driver must apply."""
        return RunConfig()

    async def stop(self) -> None:
        """Host clean-up after the instance stopped."""

    async def hotplug_add(self, pid: int) -> None:
        raise NotImplementedFeature(f"hot-plugging {self.type} devices")

    async def hotplug_remove(self, pid: int) -> None:
        raise NotImplementedFeature(f"hot-unplugging {self.type} devices")
