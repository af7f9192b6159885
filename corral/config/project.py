"""Project configuration keys (LXD 5.0), those Corral implements.

`restricted=true` turns the `restricted.*` keys on; each unset one then takes its default, which is
the blocking value (as in LXD). The checks live in corral/project_restrictions.py.
"""
from __future__ import annotations

import re

from corral.config.keys import PROJECT, Key, declare, one_of, parse_bool, parse_size, parse_uint
from corral.config.server import ARCHITECTURE, COMPRESSION


def _paths(v: str) -> str:
    for p in v.split(","):
        if not p.strip().startswith("/"):
            raise ValueError(f'"{p.strip()}" is not an absolute path')
    return v


def _id_ranges(v: str) -> str:
    for item in v.split(","):
        if not re.fullmatch(r"\s*\d+(-\d+)?\s*", item):
            raise ValueError(f'Invalid id range "{item.strip()}" (expected N or N-M)')
        lo, _, hi = item.strip().partition("-")
        if hi and int(hi) < int(lo):
            raise ValueError(f'Invalid id range "{item.strip()}"')
    return v


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _names(v: str) -> str:
    """A comma-separated list of names (networks, zones, cluster groups); "block": none."""
    if v == "block":
        return v
    for n in v.split(","):
        n = n.strip()
        if not n:
            raise ValueError("Empty name in list")
        if not _NAME.match(n) or len(n) > 255:
            raise ValueError(f'Invalid name "{n}" in list')
    return v


def _subnets(v: str) -> str:
    """restricted.networks.subnets: a comma-separated list of <uplink>:<CIDR subnet>."""
    import ipaddress
    if v == "block":
        return v
    for item in v.split(","):
        uplink, sep, subnet = item.strip().partition(":")
        if not sep or not _NAME.match(uplink):
            raise ValueError(f'Invalid subnet "{item.strip()}": expected <uplink>:<subnet>')
        try:
            ipaddress.ip_network(subnet, strict=True)
        except ValueError as e:
            raise ValueError(f'Invalid subnet "{item.strip()}": {e}') from None
    return v


_BLOCK_ALLOW = one_of("block", "allow")


def _uint32(v: str) -> int:
    n = parse_uint(v)
    if n > 2**32 - 1:
        raise ValueError(f'Invalid value "{v}" (larger than 4294967295)')
    return n


def _size(v: str) -> int:
    if v.endswith("%"):
        raise ValueError("Value can't be a percentage")
    return parse_size(v)


def _limit(name: str, parse, description: str) -> Key:
    return Key(name, PROJECT, parse, description=description)


def _restriction(name: str, parse, default: str, description: str) -> Key:
    return Key(name, PROJECT, parse, default=default, description=description)


declare(
    Key("features.images", PROJECT, parse_bool, default="true",
        description="Separate set of images and image aliases for the project"),
    Key("features.profiles", PROJECT, parse_bool, default="true",
        description="Separate set of profiles for the project"),
    Key("features.storage.volumes", PROJECT, parse_bool, default="true",
        description="Separate set of storage volumes for the project"),
    Key("features.networks", PROJECT, parse_bool, default="false",
        description="Separate set of networks for the project"),
    Key("user.*", PROJECT, description="Free form user key/value storage"),
    # limits.*: enforced by corral/project_limits.py.
    _limit("limits.containers", _uint32, "Maximum number of containers that can be created in the project"),
    _limit("limits.virtual-machines", _uint32,
           "Maximum number of VMs that can be created in the project"),
    _limit("limits.instances", _uint32, "Maximum number of total instances that can be created in the project"),
    _limit("limits.cpu", _uint32, "Maximum value for the sum of individual limits.cpu configs set on the "
                                  "instances of the project"),
    _limit("limits.memory", _size, "Maximum value for the sum of individual limits.memory configs set on the "
                                   "instances of the project"),
    _limit("limits.disk", _size, "Maximum value of aggregate disk space used by all instances volumes, custom "
                                 "volumes and images of the project"),
    _limit("limits.networks", _uint32, "Maximum value for the number of networks this project can have"),
    _limit("limits.processes", _uint32, "Maximum value for the sum of individual limits.processes configs set "
                                        "on the instances of the project"),
    Key("restricted", PROJECT, parse_bool, default="false",
        description="Block access to security-sensitive features (the restricted.* keys apply)"),
    _restriction("restricted.backups", _BLOCK_ALLOW, "block",
                 "Prevents the creation of any instance or volume backups"),
    _restriction("restricted.cluster.groups", _names, "",
                 "Prevents targeting cluster groups other than the provided ones"),
    _restriction("restricted.cluster.target", _BLOCK_ALLOW, "block",
                 "Prevents direct targeting of cluster members when creating or moving instances"),
    _restriction("restricted.containers.interception", one_of("block", "allow", "full"), "block",
                 "Prevents using system call interception options"),
    _restriction("restricted.containers.lowlevel", _BLOCK_ALLOW, "block",
                 "Prevents using low-level container options like raw.lxc, raw.idmap, volatile, etc."),
    _restriction("restricted.containers.nesting", _BLOCK_ALLOW, "block",
                 "Prevents setting security.nesting=true"),
    # LXD's docs spell the default "unpriviliged"; the value LXD (and Corral) act on is "unprivileged".
    _restriction("restricted.containers.privilege", one_of("unprivileged", "isolated", "allow"), "unprivileged",
                 "If unprivileged, prevents setting security.privileged=true. If isolated, prevents "
                 "setting security.privileged=true and also security.idmap.isolated=true. If allow, no "
                 "restriction apply."),
    _restriction("restricted.devices.disk", one_of("block", "managed", "allow"), "managed",
                 "If block, prevent use of disk devices except the root one. If managed, allow use of "
                 "disk devices only if pool= is set. If allow, no restrictions apply."),
    _restriction("restricted.devices.disk.paths", _paths, "",
                 "If restricted.devices.disk is set to allow, a comma-separated list of path prefixes "
                 "that restrict the source setting on disk devices. If empty, all paths are allowed."),
    _restriction("restricted.devices.gpu", _BLOCK_ALLOW, "block", "Prevents use of devices of type gpu"),
    _restriction("restricted.devices.infiniband", _BLOCK_ALLOW, "block",
                 "Prevents use of devices of type infiniband"),
    _restriction("restricted.devices.nic", one_of("block", "managed", "allow"), "managed",
                 "If block, prevent use of all network devices. If managed, allow use of network "
                 "devices only if network= is set. If allow, no restrictions apply."),
    _restriction("restricted.devices.pci", _BLOCK_ALLOW, "block", "Prevents use of devices of type pci"),
    _restriction("restricted.devices.proxy", _BLOCK_ALLOW, "block", "Prevents use of devices of type proxy"),
    _restriction("restricted.devices.unix-block", _BLOCK_ALLOW, "block",
                 "Prevents use of devices of type unix-block"),
    _restriction("restricted.devices.unix-char", _BLOCK_ALLOW, "block",
                 "Prevents use of devices of type unix-char"),
    _restriction("restricted.devices.unix-hotplug", _BLOCK_ALLOW, "block",
                 "Prevents use of devices of type unix-hotplug"),
    _restriction("restricted.devices.usb", _BLOCK_ALLOW, "block", "Prevents use of devices of type usb"),
    _restriction("restricted.idmap.uid", _id_ranges, "",
                 "Specifies the allowed host UID ranges in the instance raw.idmap setting"),
    _restriction("restricted.idmap.gid", _id_ranges, "",
                 "Specifies the allowed host GID ranges in the instance raw.idmap setting"),
    _restriction("restricted.networks.access", _names, "",
                 "Comma-delimited list of network names that are allowed for use in this project. "
                 "If not set, all networks are accessible."),
    _restriction("restricted.networks.subnets", _subnets, "block",
                 "Comma-delimited list of network subnets from the uplink networks (in the form "
                 "<uplink>:<subnet>) that are allocated for use in this project"),
    _restriction("restricted.networks.uplinks", _names, "block",
                 "Comma-delimited list of network names that can be used as uplinks for networks in "
                 "this project"),
    _restriction("restricted.networks.zones", _names, "block",
                 "Comma-delimited list of network zones that can be used (or something under them) in "
                 "this project"),
    _restriction("restricted.snapshots", _BLOCK_ALLOW, "block",
                 "Prevents the creation of any instance or volume snapshots"),
    _restriction("restricted.virtual-machines.lowlevel", _BLOCK_ALLOW, "block",
                 "Prevents using low-level virtual-machine options like raw.qemu, volatile, etc."),
    # Server settings a project may override (LXD 5.0's project-level images.* and backups.*).
    Key("backups.compression_algorithm", PROJECT, COMPRESSION,
        description="Compression algorithm to use for backups (overrides the server's)"),
    Key("images.auto_update_cached", PROJECT, parse_bool,
        description="Whether to automatically update cached images in the project"),
    Key("images.auto_update_interval", PROJECT, parse_uint,
        description="Interval (hours) at which to look for updates to cached images (0 disables)"),
    Key("images.compression_algorithm", PROJECT, COMPRESSION,
        description="Compression algorithm to use for new images in the project"),
    Key("images.default_architecture", PROJECT, ARCHITECTURE,
        description="Default architecture to use in a mixed-architecture cluster"),
    Key("images.remote_cache_expiry", PROJECT, parse_uint,
        description="Number of days after which an unused cached remote image is flushed in the project"),
)
