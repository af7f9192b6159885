"""Network configuration keys (LXD 5.0's bridge and macvlan network types) and their validators.

Each network type is its own scope ("network-bridge", "network-macvlan"). Tunnel keys carry the
tunnel's name (tunnel.NAME.KEY) and are checked key by key in `validate_network`.
"""
from __future__ import annotations

import ipaddress
import re

from corral.config.keys import (
    ConfigError, Key, KeyRefused, as_string, check_key_name, declare, lookup, not_implemented, not_on_host, one_of,
    parse_bool, parse_uint,
)

BRIDGE = "network-bridge"
MACVLAN = "network-macvlan"
SCOPES = {"bridge": BRIDGE, "macvlan": MACVLAN}

_MAC_RE = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
_IFNAME_RE = re.compile(r"^[^\s/:]{1,15}$")


def parse_mac(v: str) -> str:
    if not _MAC_RE.match(v):
        raise ValueError(f'Invalid MAC address "{v}"')
    return v.lower()


def parse_ifname(v: str) -> str:
    if not _IFNAME_RE.match(v) or v in (".", ".."):
        raise ValueError(f'Invalid interface name "{v}"')
    return v


def parse_ifnames(v: str) -> list[str]:
    return [parse_ifname(p.strip()) for p in v.split(",") if p.strip()]


def parse_ipv4(v: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(v)
    except ValueError:
        raise ValueError(f'Invalid IPv4 address "{v}"') from None


def parse_ip(v: str):
    try:
        return ipaddress.ip_address(v)
    except ValueError:
        raise ValueError(f'Invalid IP address "{v}"') from None


def _cidr(v: str, version: int):
    """A host address with its prefix ("10.1.2.1/24"), as LXD's ipv4.address wants."""
    if "/" not in v:
        raise ValueError(f'Invalid CIDR "{v}": missing prefix length')
    try:
        iface = ipaddress.ip_interface(v)
    except ValueError:
        raise ValueError(f'Invalid CIDR "{v}"') from None
    if iface.version != version:
        raise ValueError(f'Not an IPv{version} address "{v}"')
    net = iface.network
    if net.num_addresses > 2 and iface.ip in (net.network_address, net.broadcast_address) and version == 4:
        raise ValueError(f'"{v}" is the network or broadcast address of its subnet')
    return iface


def parse_ipv4_cidr_auto(v: str):
    if v in ("auto", "none"):
        return v
    return _cidr(v, 4)


def parse_ipv6_cidr_auto(v: str):
    if v in ("auto", "none"):
        return v
    return _cidr(v, 6)


def parse_ipv4_ranges(v: str) -> list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]]:
    out = []
    for part in v.split(","):
        part = part.strip()
        if "-" not in part:
            raise ValueError(f'Invalid IP range "{part}" (expected START-END)')
        a, b = (parse_ipv4(x.strip()) for x in part.split("-", 1))
        if int(b) < int(a):
            raise ValueError(f'Invalid IP range "{part}": end before start')
        out.append((a, b))
    return out


def parse_ipv6_ranges(v: str) -> list[tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]]:
    out = []
    for part in v.split(","):
        part = part.strip()
        if "-" not in part:
            raise ValueError(f'Invalid IP range "{part}" (expected START-END)')
        try:
            a, b = (ipaddress.IPv6Address(x.strip()) for x in part.split("-", 1))
        except ValueError:
            raise ValueError(f'Invalid IPv6 range "{part}"') from None
        if int(b) < int(a):
            raise ValueError(f'Invalid IP range "{part}": end before start')
        out.append((a, b))
    return out


def parse_ipv6(v: str) -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(v)
    except ValueError:
        raise ValueError(f'Invalid IPv6 address "{v}"') from None


def parse_mtu(v: str) -> int:
    n = parse_uint(v)
    if not 68 <= n <= 65535:
        raise ValueError(f'Invalid MTU "{v}" (68 to 65535)')
    return n


def parse_duration(v: str) -> str:
    if not re.fullmatch(r"\d+[smhdw]?|infinite", v):
        raise ValueError(f'Invalid duration "{v}"')
    return v


def parse_port(v: str) -> int:
    n = parse_uint(v)
    if not 1 <= n <= 65535:
        raise ValueError(f'Invalid port "{v}"')
    return n


def parse_vxlan_id(v: str) -> int:
    n = parse_uint(v)
    if n >= 2**24:
        raise ValueError(f'Invalid VXLAN id "{v}"')
    return n


def parse_ttl(v: str) -> int:
    n = parse_uint(v)
    if not 1 <= n <= 255:
        raise ValueError(f'Invalid TTL "{v}"')
    return n


def parse_dns_domain(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", v):
        raise ValueError(f'Invalid DNS domain "{v}"')
    return v


_MAAS = "no MAAS server is configured (maas.api.url is not supported)"
_FAN = "fan bridges (bridge.mode=fan)"
_OVN = "OVN needs openvswitch and geneve, which this kind of host's kernel lacks"

# tunnel.NAME.<key> -> validator
TUNNEL_KEYS = {
    "protocol": one_of("vxlan", "gre"),
    "id": parse_vxlan_id,
    "local": parse_ip,
    "remote": parse_ip,
    "group": parse_ip,
    "port": parse_port,
    "ttl": parse_ttl,
    "interface": parse_ifname,
}

declare(
    Key("bridge.driver", BRIDGE, one_of("native", "openvswitch"), default="native", live=False),
    Key("bridge.external_interfaces", BRIDGE, parse_ifnames),
    Key("bridge.hwaddr", BRIDGE, parse_mac),
    Key("bridge.mode", BRIDGE, one_of("standard", "fan"), default="standard", live=False),
    Key("bridge.mtu", BRIDGE, parse_mtu, default="1500"),
    Key("dns.domain", BRIDGE, parse_dns_domain, default="lxd"),
    Key("dns.mode", BRIDGE, one_of("none", "managed", "dynamic"), default="managed"),
    Key("dns.search", BRIDGE),
    Key("ipv4.address", BRIDGE, parse_ipv4_cidr_auto),
    Key("ipv4.dhcp", BRIDGE, parse_bool, default="true"),
    Key("ipv4.dhcp.expiry", BRIDGE, parse_duration, default="1h"),
    Key("ipv4.dhcp.gateway", BRIDGE, parse_ipv4),
    Key("ipv4.dhcp.ranges", BRIDGE, parse_ipv4_ranges),
    Key("ipv4.firewall", BRIDGE, parse_bool, default="true"),
    Key("ipv4.nat", BRIDGE, parse_bool, default="false"),
    Key("ipv4.nat.order", BRIDGE, one_of("before", "after"), default="before"),
    Key("ipv4.nat.address", BRIDGE, parse_ipv4),
    Key("ipv4.routing", BRIDGE, parse_bool, default="true"),
    Key("ipv6.address", BRIDGE, parse_ipv6_cidr_auto),
    Key("ipv6.dhcp", BRIDGE, parse_bool, default="true"),
    Key("ipv6.dhcp.stateful", BRIDGE, parse_bool, default="false"),
    Key("ipv6.dhcp.expiry", BRIDGE, parse_duration, default="1h"),
    Key("ipv6.dhcp.ranges", BRIDGE, parse_ipv6_ranges),
    Key("ipv6.firewall", BRIDGE, parse_bool, default="true"),
    Key("ipv6.nat", BRIDGE, parse_bool, default="false"),
    Key("ipv6.nat.address", BRIDGE, parse_ipv6),
    # With nftables (Corral's only firewall) the NAT rules live in the network's own table: LXD's
    # nftables driver has no rule order to choose either, so "before"/"after" change nothing.
    Key("ipv6.nat.order", BRIDGE, one_of("before", "after"), default="before"),
    Key("ipv6.routing", BRIDGE, parse_bool, default="true"),
    Key("raw.dnsmasq", BRIDGE),
    not_on_host("maas.subnet.ipv4", BRIDGE, _MAAS),
    not_on_host("maas.subnet.ipv6", BRIDGE, _MAAS),
    not_implemented("bgp.*", BRIDGE, "BGP peering (core.bgp_address)"),
    not_implemented("dns.zone.forward", BRIDGE, "network zones", default="managed"),
    not_implemented("dns.zone.reverse.ipv4", BRIDGE, "network zones", default="managed"),
    not_implemented("dns.zone.reverse.ipv6", BRIDGE, "network zones", default="managed"),
    not_implemented("fan.overlay_subnet", BRIDGE, _FAN, default="240.0.0.0/8"),
    not_implemented("fan.type", BRIDGE, _FAN, one_of("vxlan", "ipip"), default="vxlan"),
    not_implemented("fan.underlay_subnet", BRIDGE, _FAN),
    not_on_host("ipv4.ovn.ranges", BRIDGE, _OVN),
    not_on_host("ipv6.ovn.ranges", BRIDGE, _OVN),
    not_implemented("ipv4.routes", BRIDGE, "routes to a bridge's instances"),
    not_implemented("ipv6.routes", BRIDGE, "routes to a bridge's instances"),
    not_implemented("security.acls", BRIDGE, "network ACLs"),
    not_implemented("security.acls.default.egress.action", BRIDGE, "network ACLs",
                    one_of("allow", "reject", "drop"), default="reject"),
    not_implemented("security.acls.default.ingress.action", BRIDGE, "network ACLs",
                    one_of("allow", "reject", "drop"), default="reject"),
    not_implemented("security.acls.default.egress.logged", BRIDGE, "network ACLs", parse_bool, default="false"),
    not_implemented("security.acls.default.ingress.logged", BRIDGE, "network ACLs", parse_bool, default="false"),
    Key("tunnel.*", BRIDGE),
    Key("user.*", BRIDGE),
    Key("volatile.*", BRIDGE),
    Key("parent", MACVLAN, parse_ifname),
    Key("mtu", MACVLAN, parse_mtu),
    not_implemented("vlan", MACVLAN, "VLAN sub-interfaces for macvlan networks", parse_uint),
    not_implemented("gvrp", MACVLAN, "GARP VLAN registration", parse_bool, default="false"),
    not_on_host("maas.subnet.ipv4", MACVLAN, _MAAS),
    not_on_host("maas.subnet.ipv6", MACVLAN, _MAAS),
    Key("user.*", MACVLAN),
    Key("volatile.*", MACVLAN),
)

# Keys that are declared (so LXD documents load) but that Corral does not implement: refused clearly.
UNSUPPORTED = {
    "bridge.driver": ("openvswitch",),   # no openvswitch kernel module on this kind of host
    "bridge.mode": ("fan",),
    "tunnel.*.protocol": ("gre",),
}


def validate_network(ntype: str, name: str, config: dict) -> dict[str, str]:
    """Check every key of a network's config; the config as strings. ConfigError in LXD's words."""
    scope = SCOPES[ntype]
    if not isinstance(config, dict):
        raise ConfigError("Invalid config: expected a map of keys to values")
    out: dict[str, str] = {}
    for k, raw in config.items():
        check_key_name(k, "network configuration key")
        if raw is None:
            continue
        raw = as_string(raw, f'network "{name}" option "{k}"')
        if not isinstance(k, str) or lookup(scope, k) is None:
            raise ConfigError(f"Invalid network configuration key: {k}")
        if k.startswith("tunnel."):
            fields = k.split(".")
            if len(fields) != 3 or fields[2] not in TUNNEL_KEYS:
                raise ConfigError(f"Invalid network configuration key: {k}")
            if len(name) + len(fields[1]) > 14:
                raise ConfigError(f"Network name too long for tunnel interface: {name}-{fields[1]}")
            check = TUNNEL_KEYS[fields[2]]
            generic = f"tunnel.*.{fields[2]}"
        else:
            check = lookup(scope, k).parse
            generic = k
        if raw != "":
            try:
                check(raw)
            except (ValueError, TypeError) as e:
                raise ConfigError(f'Invalid value for network "{name}" option "{k}": {e}') from None
            key = lookup(scope, k)
            if key.refused and raw != key.default:
                raise KeyRefused(key.refused.replace(key.name, k))
            bad = UNSUPPORTED.get(generic, ())
            if bad is None or raw in bad:
                from corral.errors import NotImplementedFeature
                raise NotImplementedFeature(f'network option "{k}={raw}"')
        out[k] = raw
    return out


def tunnels(config: dict[str, str]) -> dict[str, dict[str, str]]:
    """tunnel.NAME.KEY entries grouped by tunnel name."""
    out: dict[str, dict[str, str]] = {}
    for k, v in config.items():
        if k.startswith("tunnel."):
            _, tname, key = k.split(".", 2)
            out.setdefault(tname, {})[key] = v
    return out
