"""Device maps (profiles and instances): shape checks shared by every layer.

Per-type validation and host work belong to the device drivers in corral/instance/devices/.
"""
from __future__ import annotations

import re

from corral.config.keys import check_key_name
from corral.errors import BadRequest

KNOWN_TYPES = ("none", "nic", "disk", "unix-char", "unix-block", "unix-hotplug", "usb", "gpu",
               "infiniband", "proxy", "tpm", "pci")


# LXD's validate.IsDeviceName (1-63 characters, not starting with ".", alphanumerics and "- : _ .")
# without the "/" LXD allows: a device name becomes host file names, interface names, volatile keys.
_DEVICE_NAME_RE = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,62}")

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def check_device_name(name) -> str:
    if not isinstance(name, str) or not _DEVICE_NAME_RE.fullmatch(name):
        shown = name.encode("unicode_escape").decode("ascii") if isinstance(name, str) else repr(name)
        raise BadRequest(f'Invalid device name "{shown}": names are 1-63 ASCII letters, digits, "-", ":", "_" '
                         'or "." and must not start with "."')
    return name


def check_devices(devices) -> dict[str, dict[str, str]]:
    if devices is None:
        return {}
    if not isinstance(devices, dict):
        raise BadRequest("Invalid devices: expected a map of device names to device configs")
    out: dict[str, dict[str, str]] = {}
    for name, conf in devices.items():
        check_device_name(name)
        if not isinstance(conf, dict):
            raise BadRequest(f'Invalid device "{name}": expected a map of keys to values')
        dtype = conf.get("type")
        if not dtype:
            raise BadRequest(f'Device "{name}": missing device type')
        if dtype not in KNOWN_TYPES:
            raise BadRequest(f'Device "{name}": invalid device type "{dtype}"')
        clean = {}
        for k, v in conf.items():
            check_key_name(k, f'option of device "{name}"')
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, (int, float)):
                v = str(v)
            if not isinstance(k, str) or not isinstance(v, str):
                raise BadRequest(f'Device "{name}": invalid value for "{k}": must be a string')
            if _CONTROL_RE.search(v):
                raise BadRequest(f'Device "{name}": invalid value for "{k}": control characters '
                                 '(newlines, tabs, NUL) are not allowed')
            clean[k] = v
        out[name] = clean
    return out
