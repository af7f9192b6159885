"""Device options (LXD 5.0's disk, nic, proxy and none devices), one scope per device kind.

nic devices have a scope per nictype ("device-nic-bridged", ...); a nic on a managed network
(`network=`) is checked against the scope of the nictype the network gives (bridge -> bridged,
macvlan -> macvlan). Device types and nictypes Corral does not run are refused with the reasons
below (corral/instance/devices/ raises them).
"""
from __future__ import annotations

import ipaddress
import posixpath

from corral.config.keys import ConfigError, Key, KeyRefused, check_value, declare, lookup, not_implemented, \
    not_on_host, one_of, parse_bit_rate, parse_bool, parse_int, parse_size, parse_uint
from corral.config.network import parse_ifname, parse_mac, parse_mtu, parse_ipv4

DISK = "device-disk"
PROXY = "device-proxy"
NONE = "device-none"
NIC_TYPES = ("bridged", "macvlan", "p2p")


def nic_scope(nictype: str) -> str:
    return f"device-nic-{nictype}"


# Device types LXD 5.0 has that Corral does not run: the reason given when one is used.
UNIMPLEMENTED_TYPES = {t: f"{t} devices" for t in (
    "unix-char", "unix-block", "unix-hotplug", "usb", "gpu", "infiniband", "tpm", "pci")}
UNIMPLEMENTED_NICTYPES = {
    "physical": "nic devices of nictype \"physical\"",
    "ipvlan": "nic devices of nictype \"ipvlan\"",
    "routed": "nic devices of nictype \"routed\"",
    "sriov": "nic devices of nictype \"sriov\"",
    "ovn": "nic devices of nictype \"ovn\"",
}

_VM = "applies to virtual machines; Corral runs containers only"
_MAAS = "no MAAS server is configured (maas.api.url is not supported)"


def parse_disk_path(v: str) -> str:
    """A path inside the instance; a relative one is taken from "/" (as LXD does)."""
    if "\x00" in v:
        raise ValueError("Invalid path")
    return posixpath.normpath(posixpath.join("/", v))


def parse_octal_mode(v: str) -> int:
    try:
        n = int(v, 8)
    except ValueError:
        raise ValueError(f'Invalid octal file mode "{v}"') from None
    if not 0 <= n <= 0o7777:
        raise ValueError(f'Invalid file mode "{v}"')
    return n


def parse_ipv6(v: str):
    try:
        return ipaddress.IPv6Address(v)
    except ValueError:
        raise ValueError(f'Invalid IPv6 address "{v}"') from None


def parse_disk_limit(v: str) -> str:
    """limits.read/write/max on disks: bytes per second ("10MB") or operations ("100iops")."""
    if v.endswith("iops"):
        parse_uint(v[:-4])
        return v
    parse_size(v)
    return v


def _common(scope: str) -> list[Key]:
    return [Key("type", scope)]


declare(
    *_common(DISK),
    Key("boot.priority", DISK, parse_uint),   # a VM's boot order (higher first); containers ignore it, as LXD
    not_on_host("ceph.cluster_name", DISK, "no Ceph cluster is configured", default="ceph"),
    not_on_host("ceph.user_name", DISK, "no Ceph cluster is configured", default="admin"),
    not_implemented("limits.max", DISK, "block I/O limits on disk devices", parse_disk_limit),
    not_implemented("limits.read", DISK, "block I/O limits on disk devices", parse_disk_limit),
    not_implemented("limits.write", DISK, "block I/O limits on disk devices", parse_disk_limit),
    Key("path", DISK, parse_disk_path),
    Key("pool", DISK),
    not_implemented("propagation", DISK, "mount propagation modes on disk devices"),
    not_implemented("raw.mount.options", DISK, "raw mount options on disk devices"),
    Key("readonly", DISK, parse_bool, default="false"),
    Key("recursive", DISK, parse_bool, default="false"),
    Key("required", DISK, parse_bool, default="true"),
    Key("optional", DISK, parse_bool, default="false"),   # LXD's older spelling of required=false
    Key("shift", DISK, parse_bool, default="false"),
    Key("size", DISK, parse_size),   # the root disk's (a VM's disk size; checked by the disk device)
    not_on_host("size.state", DISK, _VM),
    Key("source", DISK),

    *_common(PROXY),
    Key("bind", PROXY, one_of("host", "instance", "container"), default="host"),
    Key("connect", PROXY),
    Key("listen", PROXY),
    Key("gid", PROXY, parse_uint, default="0"),
    Key("uid", PROXY, parse_uint, default="0"),
    Key("mode", PROXY, parse_octal_mode, default="0644"),
    not_implemented("nat", PROXY, "proxy devices with nat=true", parse_bool, "false"),
    not_implemented("proxy_protocol", PROXY, "proxy devices with proxy_protocol=true", parse_bool, "false"),
    not_implemented("security.gid", PROXY, "proxy devices with security.gid", parse_uint, "0"),
    not_implemented("security.uid", PROXY, "proxy devices with security.uid", parse_uint, "0"),

    *_common(NONE),
)

_FILTERING = "MAC/IP spoofing filters on bridged NICs"


def _nic(nictype: str, *keys: Key) -> None:
    s = nic_scope(nictype)
    declare(Key("type", s), Key("nictype", s), Key("network", s), Key("name", s, parse_ifname),
            Key("hwaddr", s, parse_mac), Key("mtu", s, parse_mtu), Key("boot.priority", s, parse_uint),
            *(Key(k.name, s, k.parse, default=k.default, refused=k.refused.replace("{scope}", nictype))
              for k in keys))


_nic("bridged",
     Key("parent", "", parse_ifname), Key("host_name", "", parse_ifname),
     Key("ipv4.address", "", parse_ipv4),
     Key("ipv6.address", "", parse_ipv6),   # a DHCPv6 host entry: needs ipv6.dhcp.stateful on the network
     not_implemented("ipv4.routes", "", "routes to NICs"), not_implemented("ipv6.routes", "", "routes to NICs"),
     not_implemented("ipv4.routes.external", "", "routes to NICs"),
     not_implemented("ipv6.routes.external", "", "routes to NICs"),
     Key("limits.ingress", "", parse_bit_rate), Key("limits.egress", "", parse_bit_rate),
     Key("limits.max", "", parse_bit_rate),
     not_on_host("maas.subnet.ipv4", "", _MAAS), not_on_host("maas.subnet.ipv6", "", _MAAS),
     not_implemented("security.mac_filtering", "", _FILTERING, parse_bool, "false"),
     not_implemented("security.ipv4_filtering", "", _FILTERING, parse_bool, "false"),
     not_implemented("security.ipv6_filtering", "", _FILTERING, parse_bool, "false"),
     not_implemented("security.port_isolation", "", "bridge port isolation", parse_bool, "false"),
     not_implemented("vlan", "", "VLAN filtering on bridges", parse_uint),
     not_implemented("vlan.tagged", "", "VLAN filtering on bridges"))
_nic("macvlan",
     Key("parent", "", parse_ifname),
     not_implemented("vlan", "", "VLAN sub-interfaces for macvlan NICs", parse_uint),
     not_implemented("gvrp", "", "GARP VLAN registration", parse_bool, "false"),
     not_on_host("maas.subnet.ipv4", "", _MAAS), not_on_host("maas.subnet.ipv6", "", _MAAS))
_nic("p2p",
     Key("host_name", "", parse_ifname),
     not_implemented("ipv4.routes", "", "routes to NICs"), not_implemented("ipv6.routes", "", "routes to NICs"),
     Key("limits.ingress", "", parse_bit_rate), Key("limits.egress", "", parse_bit_rate),
     Key("limits.max", "", parse_bit_rate))


def check_device(scope: str, device: str, what: str, config: dict[str, str]) -> None:
    """Each option of one device against its scope (`what` names the kind, e.g. "bridged nic").
    Unknown keys and bad values get LXD's errors (`Device validation failed for "d": Invalid device
    option "k"`); a refused key names the device and the reason."""
    for k, v in config.items():
        key = lookup(scope, k)
        if key is None or key.is_pattern:
            raise ConfigError(f'Device validation failed for "{device}": Invalid device option "{k}"')
        try:
            check_value(key, k, v, "device option")
        except KeyRefused as e:
            raise KeyRefused(f'Device "{device}": {e.message}', e.status) from None
        except ConfigError as e:
            raise ConfigError(f'Device validation failed for "{device}": {e.message}') from None


__all__ = ["DISK", "PROXY", "NONE", "NIC_TYPES", "nic_scope", "check_device", "parse_int"]
