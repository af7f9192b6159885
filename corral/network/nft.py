"""The nftables table corral owns for one managed bridge: NAT and filtering together, replaced
atomically (`nft -f` applies a whole file as one transaction) and deleted with the network."""
from __future__ import annotations

import ipaddress
import re
import subprocess

TABLE_PREFIX = "corral-"
_BRIDGE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")


class NftError(Exception):
    pass


def table_name(bridge: str) -> str:
    return TABLE_PREFIX + bridge


def render(bridge: str, *, ipv4: ipaddress.IPv4Interface | None, ipv6: ipaddress.IPv6Interface | None,
           nat4: bool, nat6: bool, nat4_address: str | None = None, nat6_address: str | None = None, dhcp4: bool = True, dns: bool = True,
           firewall4: bool = True, firewall6: bool = True) -> str:
    """The table's full definition, in LXD's chain layout (pstrt/fwd/in/out.<bridge>)."""
    if not _BRIDGE_NAME.fullmatch(bridge):   # network names are checked on create; this is the last line
        raise NftError(f"refusing to write nftables rules for the interface name {bridge!r}")
    if nat4_address is not None:
        nat4_address = str(ipaddress.IPv4Address(nat4_address))
    if nat6_address is not None:
        nat6_address = str(ipaddress.IPv6Address(nat6_address))
    br = f'"{bridge}"'
    post, fwd, inp, out = [], [], [], []
    if ipv4 is not None:
        sub = str(ipv4.network)
        if nat4:
            action = f"snat ip to {nat4_address}" if nat4_address else "masquerade"
            post.append(f"ip saddr {sub} ip daddr != {sub} {action}")
        if firewall4:
            fwd += [f"ip version 4 oifname {br} accept", f"ip version 4 iifname {br} accept"]
            inp.append(f"iifname {br} ip protocol icmp accept")
            if dns:
                inp += [f"iifname {br} tcp dport 53 accept", f"iifname {br} udp dport 53 accept"]
            if dhcp4:
                inp.append(f"iifname {br} udp dport 67 accept")
                out.append(f"oifname {br} udp sport 67 accept")
            out.append(f"oifname {br} ip protocol icmp accept")
    if ipv6 is not None:
        sub = str(ipv6.network)
        if nat6:
            action = f"snat ip6 to {nat6_address}" if nat6_address else "masquerade"
            post.append(f"ip6 saddr {sub} ip6 daddr != {sub} {action}")
        if firewall6:
            fwd += [f"ip6 version 6 oifname {br} accept", f"ip6 version 6 iifname {br} accept"]
            inp.append(f"iifname {br} meta l4proto ipv6-icmp accept")
            if dns:
                inp += [f"iifname {br} tcp dport 53 accept", f"iifname {br} udp dport 53 accept"]
            inp.append(f"iifname {br} udp dport 547 accept")
            out += [f"oifname {br} meta l4proto ipv6-icmp accept", f"oifname {br} udp sport 547 accept"]
    lines = [f"table inet {table_name(bridge)} {{"]

    def chain(name: str, hook: str, prio: int, rules: list[str], kind: str = "filter") -> None:
        lines.append(f"  chain {name}.{bridge} {{")
        lines.append(f"    type {kind} hook {hook} priority {prio}; policy accept;")
        lines.extend(f"    {r}" for r in dict.fromkeys(rules))
        lines.append("  }")

    chain("pstrt", "postrouting", 100, post, kind="nat")
    chain("fwd", "forward", 0, fwd)
    chain("in", "input", 0, inp)
    chain("out", "output", 0, out)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _nft(script: str) -> None:
    res = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if res.returncode != 0:
        raise NftError(f"nft: {res.stderr.strip()}")


def apply(bridge: str, definition: str) -> None:
    """Replace the table in one transaction (create-if-missing, delete, define)."""
    name = table_name(bridge)
    _nft(f"table inet {name} {{}}\ndelete table inet {name}\n{definition}")


def delete(bridge: str) -> None:
    name = table_name(bridge)
    _nft(f"table inet {name} {{}}\ndelete table inet {name}\n")


def exists(bridge: str) -> bool:
    res = subprocess.run(["nft", "list", "table", "inet", table_name(bridge)], capture_output=True, text=True)
    return res.returncode == 0
