"""The network driver interface: one object per network the daemon knows.

A driver validates and completes its config (`fill` picks auto values), does the host work to
bring the network up (`start`, which also adopts what a previous daemon left running), follows
config changes (`update`), takes everything down (`delete`), and reports `state` and `leases`.
Blocking host work runs in worker threads; supervision (dnsmasq) runs on the event loop.
"""
from __future__ import annotations

import abc
import ipaddress

from corral.errors import CorralError


class NetworkError(CorralError):
    """Host work for a network failed; the message says what and why."""


class NetworkDriver(abc.ABC):
    type = ""
    managed = True

    def __init__(self, name: str, config: dict[str, str], netdir: str):
        self.name = name
        self.config = dict(config)
        self.netdir = netdir

    # ---- config -------------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def validate(cls, name: str, config: dict) -> dict[str, str]:
        """Check keys and values (BadRequest / ConfigError in LXD's words); the cleaned config."""

    @classmethod
    def fill(cls, name: str, config: dict[str, str], used: list) -> dict[str, str]:
        """Defaults LXD writes into a new network's config (auto subnets); `used`: host subnets."""
        return dict(config)

    def subnets(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The subnets this network owns (for overlap checks)."""
        return []

    @property
    def interface(self) -> str:
        """The host interface instances attach to (the bridge, or the macvlan parent)."""
        return self.name

    # ---- lifecycle ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def start(self) -> None:
        """Bring the network up, adopting host objects and processes that already exist."""

    async def update(self, config: dict[str, str]) -> None:
        """Apply a new (validated, filled) config to the running network."""
        self.config = dict(config)
        await self.start()

    @abc.abstractmethod
    async def delete(self) -> None:
        """Remove every host object and file of the network."""

    def detach(self) -> None:
        """Daemon shutdown: stop supervising, leave the network serving."""

    # ---- information --------------------------------------------------------------------------

    @abc.abstractmethod
    async def state(self) -> dict:
        """LXD's GET /1.0/networks/NAME/state."""

    def leases(self) -> list[dict]:
        """Dynamic leases known to the DHCP server: [{hwaddr, address, hostname}]."""
        return []

    def gateway_addresses(self) -> list[str]:
        return []

    # ---- instance hooks -----------------------------------------------------------------------

    async def set_host_entry(self, key: str, hwaddr: str, ipv4: str | None, hostname: str) -> None:
        """Record a static DHCP host entry for an instance NIC (no-op without DHCP)."""

    async def remove_host_entry(self, key: str) -> None:
        pass

    def nic_mtu(self) -> int | None:
        return None
