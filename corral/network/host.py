"""Host network work over rtnetlink (pyroute2), tc and sysctl. Every function blocks: call
them from worker threads (pyroute2's synchronous IPRoute runs its own event loop)."""
from __future__ import annotations

import ipaddress
import logging
import os
import random
import subprocess
from contextlib import contextmanager

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from corral.config.values import parse_bit_rate  # noqa: F401  (network limits: one parser, in config)

log = logging.getLogger(__name__)

IFA_F_NODAD = 0x02
ENODEV, EEXIST = 19, 17


class HostError(Exception):
    pass


@contextmanager
def ipr():
    with IPRoute() as r:
        yield r


def random_mac() -> str:
    """LXD's MAC prefix (00:16:3e) and three random bytes."""
    return "00:16:3e:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def random_ifname(prefix: str = "veth") -> str:
    return prefix + "".join(random.choice("0123456789abcdef") for _ in range(8))


def index(r, name: str) -> int | None:
    found = r.link_lookup(ifname=name)
    return found[0] if found else None


def exists(name: str) -> bool:
    with ipr() as r:
        return index(r, name) is not None


def link_kind(name: str) -> str | None:
    with ipr() as r:
        i = index(r, name)
        if i is None:
            return None
        link = r.get_links(i)[0]
        info = link.get_attr("IFLA_LINKINFO")
        return info.get_attr("IFLA_INFO_KIND") if info is not None else ""


def delete_link(name: str) -> bool:
    with ipr() as r:
        i = index(r, name)
        if i is None:
            return False
        try:
            r.link("del", index=i)
        except NetlinkError as e:
            if e.code != ENODEV:
                raise
        return True


def set_link(name: str, **kw) -> None:
    with ipr() as r:
        i = index(r, name)
        if i is None:
            raise HostError(f'Interface "{name}" not found')
        r.link("set", index=i, **kw)


def ensure_bridge(name: str, mtu: int | None, hwaddr: str | None) -> bool:
    """Create the bridge if missing; set MTU/MAC and bring it up. True when it was created."""
    created = False
    with ipr() as r:
        i = index(r, name)
        if i is None:
            r.link("add", ifname=name, kind="bridge", br_forward_delay=0, br_stp_state=0)
            i = index(r, name)
            created = True
        elif link_info_kind(r, i) != "bridge":
            raise HostError(f'Interface "{name}" exists and is not a bridge')
        kw = {}
        if mtu:
            kw["mtu"] = mtu
        if hwaddr:
            kw["address"] = hwaddr
        if kw:
            r.link("set", index=i, **kw)
        r.link("set", index=i, state="up")
    return created


def link_info_kind(r, i: int) -> str:
    link = r.get_links(i)[0]
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else ""


def sync_addresses(name: str, wanted: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]) -> None:
    """Make the interface's global addresses exactly `wanted` (link-local ones are left alone)."""
    with ipr() as r:
        i = index(r, name)
        if i is None:
            raise HostError(f'Interface "{name}" not found')
        have = {}
        for a in r.get_addr(index=i):
            ip = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
            iface = ipaddress.ip_interface(f"{ip}/{a['prefixlen']}")
            if iface.ip.is_link_local:
                continue
            have[str(iface)] = iface
        want = {str(w): w for w in wanted}
        for k, iface in have.items():
            if k not in want:
                r.addr("del", index=i, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        for k, iface in want.items():
            if k not in have:
                extra = {"flags": IFA_F_NODAD} if iface.version == 6 else {}
                if iface.version == 4:
                    extra["broadcast"] = str(iface.network.broadcast_address)
                r.addr("add", index=i, address=str(iface.ip), prefixlen=iface.network.prefixlen, **extra)


def enslave(name: str, bridge: str) -> None:
    with ipr() as r:
        i, b = index(r, name), index(r, bridge)
        if i is None or b is None:
            raise HostError(f'Cannot attach "{name}" to "{bridge}": interface not found')
        r.link("set", index=i, master=b, state="up")


def release(name: str) -> None:
    with ipr() as r:
        i = index(r, name)
        if i is not None:
            r.link("set", index=i, master=0)


def bridge_ports(bridge: str) -> list[str]:
    with ipr() as r:
        b = index(r, bridge)
        if b is None:
            return []
        return [link.get_attr("IFLA_IFNAME") for link in r.get_links() if link.get_attr("IFLA_MASTER") == b]


def ensure_vxlan(name: str, bridge: str, vni: int, *, local: str | None, remote: str | None,
                 group: str | None, port: int, ttl: int, dev: str | None, mtu: int | None) -> None:
    """A VXLAN interface attached to `bridge` (recreated when its parameters changed)."""
    with ipr() as r:
        i = index(r, name)
        if i is not None:
            r.link("del", index=i)
        kw = {"ifname": name, "kind": "vxlan", "vxlan_id": vni, "vxlan_port": port, "vxlan_ttl": ttl,
              "vxlan_learning": 1}
        if local:
            kw["vxlan_local" if ":" not in local else "vxlan_local6"] = local
        peer = remote or group
        if peer:
            kw["vxlan_group" if ":" not in peer else "vxlan_group6"] = peer
        if dev or group:
            link_dev = dev or default_route_dev(r)
            if link_dev:
                di = index(r, link_dev)
                if di is None:
                    raise HostError(f'Tunnel interface "{link_dev}" not found')
                kw["vxlan_link"] = di
        r.link("add", **kw)
        i = index(r, name)
        if mtu:
            r.link("set", index=i, mtu=mtu)
        b = index(r, bridge)
        r.link("set", index=i, master=b, state="up")


def default_route_dev(r) -> str | None:
    for route in r.get_default_routes(family=2):
        oif = route.get_attr("RTA_OIF")
        if oif:
            return r.get_links(oif)[0].get_attr("IFLA_IFNAME")
    return None


def create_veth(host_name: str, peer: str, *, mtu: int | None, hwaddr: str | None) -> None:
    with ipr() as r:
        r.link("add", ifname=host_name, kind="veth", peer={"ifname": peer})
        h, p = index(r, host_name), index(r, peer)
        if mtu:
            r.link("set", index=h, mtu=mtu)
            r.link("set", index=p, mtu=mtu)
        if hwaddr:
            r.link("set", index=p, address=hwaddr)
        r.link("set", index=h, state="up")


def create_macvlan(name: str, parent: str, *, mtu: int | None, hwaddr: str | None, mode: str = "bridge") -> None:
    with ipr() as r:
        pi = index(r, parent)
        if pi is None:
            raise HostError(f'Parent interface "{parent}" not found')
        kw = {"ifname": name, "kind": "macvlan", "link": pi, "macvlan_mode": mode}
        r.link("add", **kw)
        i = index(r, name)
        if mtu:
            r.link("set", index=i, mtu=mtu)
        if hwaddr:
            r.link("set", index=i, address=hwaddr)


def link_mtu(name: str) -> int | None:
    with ipr() as r:
        i = index(r, name)
        return r.get_links(i)[0].get_attr("IFLA_MTU") if i is not None else None


def move_to_netns(name: str, pid: int) -> None:
    with ipr() as r:
        i = index(r, name)
        if i is None:
            raise HostError(f'Interface "{name}" not found')
        r.link("set", index=i, net_ns_pid=pid)


def rename_up(name: str, new: str) -> None:
    """Rename an interface (it must be down) and bring it up; in the current netns."""
    with ipr() as r:
        i = index(r, name)
        if i is None:
            raise HostError(f'Interface "{name}" not found')
        if index(r, new) is not None and new != name:
            raise HostError(f'Interface "{new}" already exists in the instance')
        r.link("set", index=i, state="down")
        if new != name:
            r.link("set", index=i, ifname=new)
        r.link("set", index=i, state="up")


def host_routes_and_addresses(exclude: str | None = None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every subnet the host already uses: its addresses' subnets and its routes' destinations
    (those on interface `exclude` left out: a network's own bridge when it is reconfigured)."""
    nets = []
    with ipr() as r:
        skip = index(r, exclude) if exclude else None
        for a in r.get_addr():
            ip = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
            if ip and a["index"] != skip:
                nets.append(ipaddress.ip_interface(f"{ip}/{a['prefixlen']}").network)
        for family in (2, 10):
            for route in r.get_routes(family=family, table=254):
                dst = route.get_attr("RTA_DST")
                if route.get_attr("RTA_OIF") == skip and skip is not None:
                    continue
                if dst and route["dst_len"] > 0 and not ipaddress.ip_network(f"{dst}/{route['dst_len']}",
                                                                           strict=False).is_link_local:
                    nets.append(ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False))
    return nets


def interfaces() -> list[dict]:
    """Host interfaces: name, kind, flags, master, mtu, hwaddr, counters."""
    out = []
    with ipr() as r:
        for link in r.get_links():
            info = link.get_attr("IFLA_LINKINFO")
            out.append({"name": link.get_attr("IFLA_IFNAME"), "index": link["index"],
                        "kind": info.get_attr("IFLA_INFO_KIND") if info is not None else "",
                        "flags": link["flags"], "master": link.get_attr("IFLA_MASTER") or 0})
    return out


# ---- tc: limits.ingress / limits.egress -------------------------------------------------------

def tc(*args: str) -> None:
    res = subprocess.run(["tc", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise HostError(f"tc {' '.join(args)}: {res.stderr.strip()}")


def set_rate_limit(dev: str, bits_per_second: int) -> None:
    """An htb root qdisc capping what `dev` sends (the host end of a veth sends what the
    instance receives)."""
    subprocess.run(["tc", "qdisc", "del", "dev", dev, "root"], capture_output=True)
    tc("qdisc", "add", "dev", dev, "root", "handle", "1:0", "htb", "default", "10")
    tc("class", "add", "dev", dev, "parent", "1:0", "classid", "1:10", "htb",
       "rate", f"{bits_per_second}bit", "burst", "1024kbit")


# ---- sysctl -----------------------------------------------------------------------------------

def sysctl_set(path: str, value: str) -> None:
    full = os.path.join("/proc/sys", path)
    try:
        with open(full) as f:
            if f.read().strip() == value:
                return
        with open(full, "w") as f:
            f.write(value)
    except OSError as e:
        log.warning("sysctl %s=%s: %s", path, value, e)


# ---- state ------------------------------------------------------------------------------------

def _scope(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if ip.is_loopback:
        return "local"
    if ip.is_link_local:
        return "link"
    return "global"


def link_state(name: str) -> dict | None:
    """LXD's network state fields for a host interface (None when it does not exist)."""
    with ipr() as r:
        i = index(r, name)
        if i is None:
            return None
        link = r.get_links(i)[0]
        flags = link["flags"]
        stats = link.get_attr("IFLA_STATS64") or {}
        addrs = []
        for a in r.get_addr(index=i):
            ip = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
            if not ip:
                continue
            addr = ipaddress.ip_address(ip)
            addrs.append({"family": "inet" if addr.version == 4 else "inet6", "address": ip,
                          "netmask": str(a["prefixlen"]), "scope": _scope(addr)})
        oper = link.get_attr("IFLA_OPERSTATE")
        kind = "loopback" if flags & 0x8 else "point-to-point" if flags & 0x10 else "broadcast"
        return {
            "addresses": addrs,
            "counters": {"bytes_received": stats.get("rx_bytes", 0), "bytes_sent": stats.get("tx_bytes", 0),
                         "packets_received": stats.get("rx_packets", 0), "packets_sent": stats.get("tx_packets", 0),
                         "errors_received": stats.get("rx_errors", 0), "errors_sent": stats.get("tx_errors", 0),
                         "packets_dropped_outbound": stats.get("tx_dropped", 0),
                         "packets_dropped_inbound": stats.get("rx_dropped", 0)},
            "hwaddr": "" if kind == "loopback" else (link.get_attr("IFLA_ADDRESS") or ""),
            "mtu": link.get_attr("IFLA_MTU") or 0,
            "state": "up" if flags & 0x1 and oper != "DOWN" else "down",
            "type": kind,
        }


def bridge_info(name: str) -> dict:
    """The `bridge` part of LXD's network state, from sysfs."""
    base = f"/sys/class/net/{name}/bridge"

    def read(f: str, default: str = "0") -> str:
        try:
            with open(os.path.join(base, f)) as fh:
                return fh.read().strip()
        except OSError:
            return default

    bid = read("bridge_id", "")
    try:
        uppers = sorted(os.listdir(f"/sys/class/net/{name}/brif"))
    except OSError:
        uppers = bridge_ports(name)
    return {"id": bid.replace(":", ""), "stp": read("stp_state") != "0",
            "forward_delay": int(read("forward_delay") or 0), "vlan_default": int(read("default_pvid") or 0),
            "vlan_filtering": read("vlan_filtering") != "0", "upper_devices": uppers}


def create_tap(name: str, *, mtu: int | None) -> None:
    """A persistent tap interface (a VM's NIC: QEMU opens it by name), up."""
    with ipr() as r:
        r.link("add", ifname=name, kind="tuntap", mode="tap")
        i = index(r, name)
        if mtu:
            r.link("set", index=i, mtu=mtu)
        r.link("set", index=i, state="up")


def create_macvtap(name: str, parent: str, *, mtu: int | None, hwaddr: str | None, mode: str = "bridge") -> int:
    """A macvtap on `parent` (a VM's macvlan NIC), up: its ifindex (its character device is /dev/tapN)."""
    with ipr() as r:
        pi = index(r, parent)
        if pi is None:
            raise HostError(f'Parent interface "{parent}" not found')
        r.link("add", ifname=name, kind="macvtap", link=pi, macvtap_mode=mode)
        i = index(r, name)
        if mtu:
            r.link("set", index=i, mtu=mtu)
        if hwaddr:
            r.link("set", index=i, address=hwaddr)
        r.link("set", index=i, state="up")
        return i
