"""Choosing and checking subnets from what the host already routes and addresses.

Never probe addresses over the network to decide whether a subnet is free: some hosts (this
kind of VM among them) accept a TCP connection to any address, which makes every subnet look used.
"""
from __future__ import annotations

import ipaddress
import random

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def overlaps(net: Net, used: list[Net]) -> Net | None:
    for u in used:
        if u.version == net.version and u.prefixlen > 0 and net.overlaps(u):
            return u
    return None


def pick_ipv4(used: list[Net], rng: random.Random | None = None, attempts: int = 1000) -> ipaddress.IPv4Interface:
    """A random 10.X.Y.1/24 that overlaps nothing in `used` (LXD's ipv4.address=auto)."""
    rng = rng or random.Random()
    for _ in range(attempts):
        net = ipaddress.IPv4Network(f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24")
        if overlaps(net, used) is None:
            return ipaddress.IPv4Interface(f"{net.network_address + 1}/24")
    raise ValueError("Failed to automatically find an unused IPv4 subnet, manual configuration required")


def pick_ipv6(used: list[Net], rng: random.Random | None = None, attempts: int = 1000) -> ipaddress.IPv6Interface:
    """A random fd42:nnnn:nnnn:nnnn::1/64 (LXD's ipv6.address=auto)."""
    rng = rng or random.Random()
    for _ in range(attempts):
        words = [rng.randrange(65536) for _ in range(3)]
        net = ipaddress.IPv6Network("fd42:{:x}:{:x}:{:x}::/64".format(*words))
        if overlaps(net, used) is None:
            return ipaddress.IPv6Interface(f"{net.network_address + 1}/64")
    raise ValueError("Failed to automatically find an unused IPv6 subnet, manual configuration required")
