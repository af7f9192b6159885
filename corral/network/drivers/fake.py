"""A network driver with no host side effects, for tests: it records what it was asked to do."""
from __future__ import annotations

from corral.config import network as netcfg
from corral.network.drivers.base import NetworkDriver
from corral.network.subnets import pick_ipv4


class FakeDriver(NetworkDriver):
    type = "fake"
    calls: list[tuple[str, str]] = []

    @classmethod
    def validate(cls, name: str, config: dict) -> dict[str, str]:
        return netcfg.validate_network("bridge", name, config)

    @classmethod
    def fill(cls, name: str, config: dict[str, str], used: list) -> dict[str, str]:
        out = dict(config)
        if out.get("ipv4.address", "") in ("", "auto"):
            out["ipv4.address"] = str(pick_ipv4(used))
        return out

    def subnets(self):
        import ipaddress
        v = self.config.get("ipv4.address", "none")
        return [] if v == "none" else [ipaddress.IPv4Interface(v).network]

    async def start(self) -> None:
        self.calls.append(("start", self.name))

    async def update(self, config: dict[str, str]) -> None:
        self.config = dict(config)
        self.calls.append(("update", self.name))

    async def delete(self) -> None:
        self.calls.append(("delete", self.name))

    async def state(self) -> dict:
        return {"addresses": [], "counters": {"bytes_received": 0, "bytes_sent": 0, "packets_received": 0,
                                              "packets_sent": 0},
                "hwaddr": "00:16:3e:00:00:00", "mtu": 1500, "state": "up", "type": "broadcast",
                "bond": None, "bridge": None, "vlan": None, "ovn": None}

    def leases(self) -> list[dict]:
        return []
