"""Devices: a name -> class registry. Types LXD knows but Corral does not implement yet answer a
clear "not implemented" error."""
from __future__ import annotations

import logging

from corral.config.devices import UNIMPLEMENTED_TYPES
from corral.devices import check_devices
from corral.errors import BadRequest, NotImplementedFeature
from corral.instance.devices.base import Device, RunConfig  # noqa: F401
from corral.instance.devices.disk import Disk, NoneDevice
from corral.instance.devices.nic import Nic
from corral.instance.devices.proxy import Proxy

log = logging.getLogger(__name__)

DEVICES: dict[str, type[Device]] = {"disk": Disk, "none": NoneDevice, "nic": Nic, "proxy": Proxy}


def device_class(dtype: str) -> type[Device]:
    cls = DEVICES.get(dtype)
    if cls is None:
        if dtype in UNIMPLEMENTED_TYPES:
            raise NotImplementedFeature(UNIMPLEMENTED_TYPES[dtype])
        # check_devices refuses unknown types: only a record written some other way gets here
        raise BadRequest(f'Invalid device type "{dtype}"')
    return cls


def validate_devices(daemon, devices, inst=None) -> dict[str, dict[str, str]]:
    """Shape checks, then each device's own validation. Returns the cleaned map."""
    clean = check_devices(devices)
    for name, conf in clean.items():
        device_class(conf["type"])(daemon, inst, name, conf).validate()
    return clean


def instance_devices(daemon, inst, *, tolerant: bool = False) -> list[Device]:
    """The devices of an instance's expanded config, in name order (none devices mask).
    tolerant (stop, delete): a device whose config cannot be read is skipped, not an error."""
    out = []
    for name, conf in sorted(inst.devices.items()):
        if conf.get("type") == "none":
            continue
        try:
            out.append(device_class(conf.get("type", ""))(daemon, inst, name, conf))
        except (BadRequest, NotImplementedFeature):
            if not tolerant:
                raise
            log.warning("instance %s: skipping unreadable device %s", inst.name, name)
    return out
