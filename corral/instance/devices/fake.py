"""Devices of the daemon's mock mode (`corrald --mock`): the same validation and the same errors at
start as the real ones, and no host work. A disk device mounts nothing (its source must still
exist, or the custom volume be there), a NIC makes no veth or macvlan (it still picks and records
its MAC address and its network's DHCP entry), a proxy device forwards nothing."""
from __future__ import annotations

import os

from corral.errors import NotFound
from corral.instance.devices.base import RunConfig
from corral.instance.devices.disk import Disk
from corral.instance.devices.nic import Nic
from corral.instance.devices.proxy import Proxy
from corral.network import host
from corral.network.drivers.base import NetworkError


class FakeDisk(Disk):
    async def _check_source(self) -> bool:
        """Whether there is something to (pretend to) mount; the real device's errors otherwise."""
        pool = self.config.get("pool")
        if pool:
            holder = self.d.projects.holder("storage.volumes", self.inst.project)
            try:
                await self.d.volumes.custom(pool, holder, self.config["source"])
            except NotFound:
                raise self._bad(f'storage volume "{self.config["source"]}" doesn\'t exist '
                                f'in pool "{pool}"') from None
            return True
        if os.path.exists(self.config["source"]):
            return True
        if self.optional:
            return False
        raise self._bad(f'source path "{self.config["source"]}" doesn\'t exist')

    async def start(self) -> RunConfig:
        if not self.is_root:
            await self._check_source()
        return RunConfig()

    async def hotplug_add(self, pid: int) -> None:
        if self.is_root:
            raise self._bad("The root disk cannot be changed while the instance is running")
        await self._check_source()

    async def hotplug_remove(self, pid: int) -> None:
        if self.is_root:
            raise self._bad("The root disk cannot be changed while the instance is running")


class FakeNic(Nic):
    async def start(self) -> RunConfig:
        _nictype, _parent, drv = self._resolve()   # a missing network fails here, as for the real NIC
        hwaddr = (self.config.get("hwaddr") or self._volatile("hwaddr") or host.random_mac()).lower()
        if drv is not None:
            try:
                await drv.set_host_entry(self._entry_key, hwaddr, self.config.get("ipv4.address") or None,
                                         self.inst.name)
            except NetworkError as e:
                raise self._bad(e.message) from None
        await self.d.instances.set_volatile(self.inst.project, self.inst.name,
                                            {f"volatile.{self.name}.hwaddr": hwaddr})
        self.inst.config[f"volatile.{self.name}.hwaddr"] = hwaddr
        return RunConfig()

    async def stop(self) -> None:
        try:
            _, _, drv = self._resolve()
        except Exception:   # noqa: BLE001 - the network went away: nothing to remove from it
            drv = None
        if drv is not None:
            await drv.remove_host_entry(self._entry_key)

    async def hotplug_add(self, pid: int) -> None:
        await self.start()

    async def hotplug_remove(self, pid: int) -> None:
        await self.stop()


class FakeProxy(Proxy):
    async def start(self) -> RunConfig:
        return RunConfig()

    async def stop(self) -> None:
        pass

    async def hotplug_add(self, pid: int) -> None:
        pass

    async def hotplug_remove(self, pid: int) -> None:
        pass


FAKE_DEVICES = {"disk": FakeDisk, "nic": FakeNic, "proxy": FakeProxy}
