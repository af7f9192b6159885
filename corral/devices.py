"""Device maps (profiles and instances): shape checks shared by every layer.

Per-type validation and host work belong to the device drivers in corral/instance/devices/.
"""
from __future__ import annotations

from corral.errors import BadRequest

KNOWN_TYPES = ("none", "nic", "disk", "unix-char", "unix-block", "unix-hotplug", "usb", "gpu",
               "infiniband", "proxy", "tpm", "pci")


def check_devices(devices) -> dict[str, dict[str, str]]:
    if devices is None:
        return {}
    if not isinstance(devices, dict):
        raise BadRequest("Invalid devices: expected a map of device names to device configs")
    out: dict[str, dict[str, str]] = {}
    for name, conf in devices.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise BadRequest(f"Invalid device name {name!r}")
        if not isinstance(conf, dict):
            raise BadRequest(f'Invalid device "{name}": expected a map of keys to values')
        dtype = conf.get("type")
        if not dtype:
            raise BadRequest(f'Device "{name}": missing device type')
        if dtype not in KNOWN_TYPES:
            raise BadRequest(f'Device "{name}": invalid device type "{dtype}"')
        clean = {}
        for k, v in conf.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, (int, float)):
                v = str(v)
            if not isinstance(k, str) or not isinstance(v, str):
                raise BadRequest(f'Device "{name}": invalid value for "{k}": must be a string')
            clean[k] = v
        out[name] = clean
    return out
