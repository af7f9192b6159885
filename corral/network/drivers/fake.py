"""A network driver with no host side effects, for tests and the daemon's mock mode
(`corrald --mock`, where every network type maps onto it): it validates and fills its config as the
bridge driver does (auto subnets included), keeps the static DHCP entries instances ask for, and
records what it was asked to do. No link, address, nft rule or dnsmasq is ever made."""
from __future__ import annotations

import ipaddress

from corral.config import network as netcfg
from corral.network.drivers.base import NetworkDriver
from corral.network.subnets import pick_ipv4


class FakeDriver(NetworkDriver):
    type = "fake"
    validates_as = "bridge"   # whose config keys it takes
    calls: list[tuple[str, str]] = []   # every fake network's calls (the class's, for tests)

    def __init__(self, name: str, config: dict[str, str], netdir: str):
        super().__init__(name, config, netdir)
        self.host_entries: dict[str, tuple[str, str | None, str]] = {}

    @classmethod
    def validate(cls, name: str, config: dict) -> dict[str, str]:
        return netcfg.validate_network(cls.validates_as, name, config)

    @classmethod
    def fill(cls, name: str, config: dict[str, str], used: list) -> dict[str, str]:
        out = dict(config)
        if cls.validates_as == "bridge" and out.get("ipv4.address", "") in ("", "auto"):
            out["ipv4.address"] = str(pick_ipv4(used))
        return out

    def subnets(self):
        v = self.config.get("ipv4.address", "none")
        return [] if v in ("none", "") else [ipaddress.IPv4Interface(v).network]

    def gateway_addresses(self) -> list[str]:
        v = self.config.get("ipv4.address", "none")
        return [] if v in ("none", "") else [str(ipaddress.IPv4Interface(v).ip)]

    async def start(self) -> None:
        self.calls.append(("start", self.name))

    async def update(self, config: dict[str, str]) -> None:
        self.config = dict(config)
        self.calls.append(("update", self.name))

    async def delete(self) -> None:
        self.calls.append(("delete", self.name))

    async def state(self) -> dict:
        addresses = []
        v = self.config.get("ipv4.address", "none")
        if v not in ("none", ""):
            iface = ipaddress.IPv4Interface(v)
            addresses.append({"family": "inet", "address": str(iface.ip), "netmask": str(iface.network.prefixlen),
                              "scope": "global"})
        return {"addresses": addresses,
                "counters": {"bytes_received": 0, "bytes_sent": 0, "packets_received": 0, "packets_sent": 0},
                "hwaddr": "00:16:3e:00:00:00", "mtu": int(self.config.get("bridge.mtu") or 1500), "state": "up",
                "type": "broadcast", "bond": None, "bridge": None, "vlan": None, "ovn": None}

    def leases(self) -> list[dict]:
        return []

    async def set_host_entry(self, key: str, hwaddr: str, ipv4: str | None, hostname: str, **_kw) -> None:
        self.host_entries[key] = (hwaddr, ipv4, hostname)

    async def remove_host_entry(self, key: str) -> None:
        self.host_entries.pop(key, None)


class FakeBridge(FakeDriver):
    """Mock mode's `bridge` networks."""
    type = "bridge"


class FakeMacvlan(FakeDriver):
    """Mock mode's `macvlan` networks: the macvlan keys (a `parent` is required), no host check."""
    type = "macvlan"
    validates_as = "macvlan"

    @classmethod
    def validate(cls, name: str, config: dict) -> dict[str, str]:
        from corral.network.drivers.macvlan import MacvlanDriver
        return MacvlanDriver.validate(name, config)

    @property
    def interface(self) -> str:
        return self.config["parent"]


class NoHost:
    """Mock mode's view of the host's network (in place of corral.network.host's netlink reads):
    no interface, no route, so nothing of the real host shows through the API."""

    @staticmethod
    def interfaces() -> list[dict]:
        return []

    @staticmethod
    def host_routes_and_addresses(exclude: str | None = None) -> list:
        return []

    @staticmethod
    def link_state(name: str) -> dict | None:
        return None

    @staticmethod
    def bridge_info(name: str) -> dict:
        return {}


MOCK_DRIVERS = {"bridge": FakeBridge, "macvlan": FakeMacvlan}
