"""`macvlan` networks: presets (parent, mtu) for instance NICs; no host object of their own."""
from __future__ import annotations

import asyncio

from corral.config import network as netcfg
from corral.network import host
from corral.network.drivers.base import NetworkDriver, NetworkError


class MacvlanDriver(NetworkDriver):
    type = "macvlan"

    @classmethod
    def validate(cls, name: str, config: dict) -> dict[str, str]:
        out = netcfg.validate_network("macvlan", name, config)
        if not out.get("parent"):
            raise NetworkError('Invalid value for network "{}" option "parent": Required value'.format(name), 400)
        return out

    @property
    def interface(self) -> str:
        return self.config["parent"]

    def nic_mtu(self) -> int | None:
        return int(self.config["mtu"]) if self.config.get("mtu") else None

    async def start(self) -> None:
        if not await asyncio.to_thread(host.exists, self.interface):
            raise NetworkError(f'Parent interface "{self.interface}" not found', 400)

    async def delete(self) -> None:
        pass

    async def state(self) -> dict:
        st = await asyncio.to_thread(host.link_state, self.interface)
        if st is None:
            raise NetworkError(f'Interface "{self.interface}" not found', 404)
        st.update({"bond": None, "bridge": None, "vlan": None, "ovn": None})
        return st
