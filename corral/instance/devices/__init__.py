"""Devices: a name -> class registry. Types LXD knows but Corral does not implement yet answer a
clear "not implemented" error."""
from __future__ import annotations

from corral.devices import KNOWN_TYPES, check_devices
from corral.errors import NotImplementedFeature
from corral.instance.devices.base import Device, RunConfig  # noqa: F401
from corral.instance.devices.disk import Disk, NoneDevice
from corral.instance.devices.nic import Nic
from corral.instance.devices.proxy import Proxy

DEVICES: dict[str, type[Device]] = {"disk": Disk, "none": NoneDevice, "nic": Nic, "proxy": Proxy}


def device_class(dtype: str) -> type[Device]:
    cls = DEVICES.get(dtype)
    if cls is None:
        if dtype in KNOWN_TYPES:
            raise NotImplementedFeature(f"{dtype} devices")
        raise ValueError(dtype)  # check_devices already refused unknown types
    return cls


def validate_devices(daemon, devices, inst=None) -> dict[str, dict[str, str]]:
    """Shape checks, then each device's own validation. Returns the cleaned map."""
    clean = check_devices(devices)
    for name, conf in clean.items():
        device_class(conf["type"])(daemon, inst, name, conf).validate()
    return clean


def instance_devices(daemon, inst) -> list[Device]:
    """The devices of an instance's expanded config, in name order (none devices mask)."""
    return [device_class(conf["type"])(daemon, inst, name, conf)
            for name, conf in sorted(inst.devices.items()) if conf.get("type") != "none"]
