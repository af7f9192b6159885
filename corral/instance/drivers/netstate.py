"""The `network` part of LXD's instance state, read over rtnetlink inside a process's netns."""
from __future__ import annotations

import ipaddress
import os
import threading

from pyroute2 import IPRoute

IFF_LOOPBACK, IFF_POINTOPOINT, IFF_UP = 0x8, 0x10, 0x1
FAMILIES = {2: "inet", 10: "inet6"}


def _scope(addr: str) -> str:
    ip = ipaddress.ip_address(addr)
    if ip.is_loopback:
        return "local"
    if ip.is_link_local:
        return "link"
    return "global"


def _counters(stats: dict | None) -> dict[str, int]:
    s = stats or {}
    return {"bytes_received": s.get("rx_bytes", 0), "bytes_sent": s.get("tx_bytes", 0),
            "packets_received": s.get("rx_packets", 0), "packets_sent": s.get("tx_packets", 0),
            "errors_received": s.get("rx_errors", 0), "errors_sent": s.get("tx_errors", 0),
            "packets_dropped_outbound": s.get("tx_dropped", 0),
            "packets_dropped_inbound": s.get("rx_dropped", 0)}


def _interfaces(ipr: IPRoute) -> tuple[dict[str, dict], dict[str, int]]:
    """Interfaces of the current netns in LXD's shape, plus name -> peer ifindex for veths."""
    names, out, peers = {}, {}, {}
    for link in ipr.get_links():
        name = link.get_attr("IFLA_IFNAME")
        flags = link["flags"]
        names[link["index"]] = name
        kind = "loopback" if flags & IFF_LOOPBACK else "point-to-point" if flags & IFF_POINTOPOINT \
            else "broadcast"
        oper = link.get_attr("IFLA_OPERSTATE")
        out[name] = {
            "addresses": [],
            "counters": _counters(link.get_attr("IFLA_STATS64")),
            "hwaddr": "" if kind == "loopback" else (link.get_attr("IFLA_ADDRESS") or ""),
            "host_name": "",
            "mtu": link.get_attr("IFLA_MTU") or 0,
            "state": "up" if flags & IFF_UP and oper != "DOWN" else "down",
            "type": kind,
        }
        info = link.get_attr("IFLA_LINKINFO")
        if info is not None and info.get_attr("IFLA_INFO_KIND") == "veth" and link.get_attr("IFLA_LINK"):
            peers[name] = link.get_attr("IFLA_LINK")
    for addr in ipr.get_addr():
        name = names.get(addr["index"])
        family = FAMILIES.get(addr["family"])
        ip = addr.get_attr("IFA_LOCAL") or addr.get_attr("IFA_ADDRESS")
        if name in out and family and ip:
            out[name]["addresses"].append({"family": family, "address": ip,
                                           "netmask": str(addr["prefixlen"]), "scope": _scope(ip)})
    return out, peers


def _in_netns(pid: int) -> tuple[dict[str, dict], dict[str, int]]:
    """Run _interfaces inside /proc/PID/ns/net on a throwaway thread (setns is per thread)."""
    result: list = []

    def worker() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            os.setns(target, os.CLONE_NEWNET)
            try:
                with IPRoute() as ipr:
                    result.append(_interfaces(ipr))
            finally:
                os.setns(own, os.CLONE_NEWNET)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            result.append(e)
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=worker, name=f"netns-{pid}")
    t.start()
    t.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def network_state(pid: int) -> dict[str, dict] | None:
    try:
        interfaces, peers = _in_netns(pid)
    except (OSError, FileNotFoundError):
        return None
    if peers:
        with IPRoute() as ipr:
            host = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for name, index in peers.items():
            interfaces[name]["host_name"] = host.get(index, "")
    return interfaces
