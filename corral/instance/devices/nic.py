"""nic devices: bridged (a veth pair, the host end in a bridge), p2p (a veth pair, host end left
alone) and macvlan; on a managed network (`network=`) or a host interface (`nictype`+`parent`).

The device makes the host-side interface itself and hands the instance end to liblxc as a
`phys` interface (as LXD does), so the same code plugs a NIC into a running container: the end
is moved into the container's network namespace and renamed there. volatile.<dev>.hwaddr and
volatile.<dev>.host_name record the generated MAC and host name, like LXD.
"""
from __future__ import annotations

import asyncio
import re
import time

from corral.errors import NotImplementedFeature
from corral.config.devices import NIC_TYPES, UNIMPLEMENTED_NICTYPES, check_device, nic_scope
from corral.instance.devices.base import Device, RunConfig
from corral.network import host
from corral.network.drivers.base import NetworkError
from corral.network.netns import run_in_netns



# The host interfaces nic devices make: veth ends and VM taps (host.random_ifname), macvlans and macvtaps
# ("mc" + MAC).
_OWN_LINK = re.compile(r"veth[0-9a-f]{8}|tap[0-9a-f]{8}|mc[0-9a-f]{12}")


async def release_links(names: list[str], wait: float = 0.0) -> list[str]:
    """Delete the interfaces a stopped container handed back that nic devices made (a NIC whose
    device config could not be read was not cleaned up by its device): the names deleted.
    wait: how long to wait for a link liblxc has not given back yet (it does so as the
    container's network namespace goes away)."""
    gone = []
    for name in names:
        if not _OWN_LINK.fullmatch(name):
            continue
        deadline = time.monotonic() + wait
        while not await asyncio.to_thread(host.exists, name) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if await asyncio.to_thread(host.delete_link, name):
            gone.append(name)
    return gone


class Nic(Device):
    type = "nic"
    hotpluggable = True

    def validate(self) -> None:
        c = self.config
        if c.get("network"):
            for k in ("nictype", "parent"):
                if c.get(k):
                    raise self._bad(f'Cannot use "{k}" property in conjunction with "network" property')
            if self.d.networks.managed(c["network"]) is None:
                raise self._bad(f'Failed loading network "{c["network"]}": Network not found')
        else:
            nictype = c.get("nictype", "")
            if not nictype:
                raise self._bad("Missing nic type")
            if nictype in UNIMPLEMENTED_NICTYPES:
                raise NotImplementedFeature(UNIMPLEMENTED_NICTYPES[nictype])
            if nictype not in NIC_TYPES:
                raise self._bad(f'Invalid nictype "{nictype}"')
            if nictype in ("bridged", "macvlan") and not c.get("parent"):
                raise self._bad(f'Missing required "parent" property for nictype "{nictype}"')
        check_device(nic_scope(self._nictype()), self.name, f"{self._nictype()} nic", c)
        for k in ("ipv4.address", "ipv6.address"):
            if c.get(k) and (self._nictype() != "bridged" or not self._managed_bridge()):
                raise self._bad(f'"{k}" needs a bridged NIC on a managed network')
        if c.get("ipv4.address") or c.get("ipv6.address"):
            drv = self.d.networks.managed(c.get("network") or c.get("parent", ""))
            try:
                drv.check_static_addresses(c.get("ipv4.address") or None, c.get("ipv6.address") or None)
            except NetworkError as e:
                raise self._bad(e.message) from None

    # ---- resolution -----------------------------------------------------------------------------

    def _nictype(self) -> str:
        if self.config.get("network"):
            drv = self.d.networks.managed(self.config["network"])
            return "macvlan" if drv is not None and drv.type == "macvlan" else "bridged"
        return self.config.get("nictype", "")

    def _managed_bridge(self) -> bool:
        name = self.config.get("network") or self.config.get("parent", "")
        drv = self.d.networks.managed(name) if name else None
        return drv is not None and drv.type == "bridge"

    def _resolve(self):
        """(nictype, parent interface, managed network driver or None)."""
        c = self.config
        if c.get("network"):
            drv = self.d.networks.driver(c["network"])
            return ("macvlan" if drv.type == "macvlan" else "bridged"), drv.interface, drv
        nictype, parent = c["nictype"], c.get("parent", "")
        drv = self.d.networks.managed(parent) if nictype == "bridged" else None
        if drv is not None and drv.type != "bridge":
            drv = None
        return nictype, parent, drv

    @property
    def ifname(self) -> str:
        return self.config.get("name") or self.name

    def _volatile(self, key: str) -> str:
        return self.inst.config.get(f"volatile.{self.name}.{key}", "") if self.inst is not None else ""

    def _index(self) -> int:
        nics = sorted(n for n, c in self.inst.devices.items() if c.get("type") == "nic")
        return nics.index(self.name) if self.name in nics else len(nics)

    @property
    def _entry_key(self) -> str:
        return f"{self.d.instances.volume_name(self.inst.project, self.inst.name)}.{self.name}"

    def _rates(self) -> tuple[int | None, int | None]:
        c = self.config
        ingress = c.get("limits.ingress") or c.get("limits.max")
        egress = c.get("limits.egress") or c.get("limits.max")
        return (host.parse_bit_rate(ingress) if ingress else None, host.parse_bit_rate(egress) if egress else None)

    # ---- host side ------------------------------------------------------------------------------

    async def plan(self) -> tuple[str, str, object, str, int | None, int | None]:
        """(nictype, parent, managed network driver or None, hwaddr, mtu, ingress rate) of a start."""
        nictype, parent, drv = self._resolve()
        hwaddr = (self.config.get("hwaddr") or self._volatile("hwaddr") or host.random_mac()).lower()
        mtu = int(self.config["mtu"]) if self.config.get("mtu") else None
        if mtu is None and drv is not None:
            mtu = drv.nic_mtu()
        if mtu is None and nictype == "bridged":
            mtu = await asyncio.to_thread(host.link_mtu, parent)
        return nictype, parent, drv, hwaddr, mtu, self._rates()[0]

    async def register(self, drv, hwaddr: str, host_name: str, link: str) -> None:
        """The DHCP host entry (managed network) and the volatile keys of a NIC whose host side `link`
        exists (deleted when the entry is refused)."""
        try:
            if drv is not None:
                await drv.set_host_entry(self._entry_key, hwaddr, self.config.get("ipv4.address") or None,
                                         self.inst.name, ipv6=self.config.get("ipv6.address") or None)
        except NetworkError as e:
            await asyncio.to_thread(host.delete_link, link)
            raise self._bad(e.message) from None
        await self.d.instances.set_volatile(self.inst.project, self.inst.name, {
            f"volatile.{self.name}.hwaddr": hwaddr, f"volatile.{self.name}.host_name": host_name or None})
        self.inst.config[f"volatile.{self.name}.hwaddr"] = hwaddr
        if host_name:
            self.inst.config[f"volatile.{self.name}.host_name"] = host_name

    async def attach(self, host_name: str, nictype: str, parent: str, ingress: int | None) -> None:
        """The new host end `host_name` into the bridge and rate-limited; deleted when that fails."""
        try:
            if nictype == "bridged":
                await asyncio.to_thread(host.enslave, host_name, parent)
            if ingress:
                await asyncio.to_thread(host.set_rate_limit, host_name, ingress)
        except BaseException:
            await asyncio.to_thread(host.delete_link, host_name)
            raise

    async def _create(self) -> tuple[str, str, str]:
        """Create the host-side interfaces; (instance-end name, host_name or "", hwaddr)."""
        nictype, parent, drv, hwaddr, mtu, ingress = await self.plan()
        if nictype in ("bridged", "p2p"):
            if nictype == "bridged" and not await asyncio.to_thread(host.exists, parent):
                raise self._bad(f'Parent interface "{parent}" not found')
            host_name = self.config.get("host_name") or host.random_ifname("veth")
            if await asyncio.to_thread(host.exists, host_name):
                raise self._bad(f'Host interface name "{host_name}" is already in use')
            peer = host.random_ifname("veth")
            await asyncio.to_thread(host.create_veth, host_name, peer, mtu=mtu, hwaddr=hwaddr)
            await self.attach(host_name, nictype, parent, ingress)
        else:  # macvlan
            host_name = ""
            peer = "mc" + hwaddr.replace(":", "")
            await asyncio.to_thread(host.delete_link, peer)
            try:
                await asyncio.to_thread(host.create_macvlan, peer, parent, mtu=mtu, hwaddr=hwaddr)
            except host.HostError as e:
                raise self._bad(str(e)) from None
        await self.register(drv, hwaddr, host_name, host_name or peer)
        return peer, host_name, hwaddr

    def _egress_hook(self):
        _, egress = self._rates()
        if not egress:
            return None
        ifname = self.ifname

        def hook(pid: int) -> None:
            run_in_netns(pid, lambda: host.set_rate_limit(ifname, egress))
        return hook

    async def start(self) -> RunConfig:
        peer, _host_name, hwaddr = await self._create()
        i = self._index()
        rc = RunConfig(lxc=[f"lxc.net.{i}.type = phys", f"lxc.net.{i}.link = {peer}",
                            f"lxc.net.{i}.name = {self.ifname}", f"lxc.net.{i}.hwaddr = {hwaddr}",
                            f"lxc.net.{i}.flags = up"])
        hook = self._egress_hook()
        if hook is not None:
            rc.post_start.append(hook)
        return rc

    async def _cleanup(self) -> None:
        host_name = self._volatile("host_name") or self.config.get("host_name", "")
        if host_name:
            await asyncio.to_thread(host.delete_link, host_name)
        hwaddr = self._volatile("hwaddr")
        if hwaddr and self._nictype() == "macvlan":
            await asyncio.to_thread(host.delete_link, "mc" + hwaddr.replace(":", ""))
        try:
            _, _, drv = self._resolve()
        except Exception:
            drv = None
        if drv is not None:
            await drv.remove_host_entry(self._entry_key)
        if self.inst is not None:
            await self.d.instances.set_volatile(self.inst.project, self.inst.name,
                                                {f"volatile.{self.name}.host_name": None})

    async def stop(self) -> None:
        await self._cleanup()

    async def hotplug_add(self, pid: int) -> None:
        peer, host_name, _ = await self._create()
        ifname = self.ifname
        try:
            await asyncio.to_thread(host.move_to_netns, peer, pid)
            await asyncio.to_thread(run_in_netns, pid, lambda: host.rename_up(peer, ifname))
            hook = self._egress_hook()
            if hook is not None:
                await asyncio.to_thread(hook, pid)
        except host.HostError as e:
            await self._cleanup()
            raise self._bad(str(e)) from None
        except BaseException:
            await self._cleanup()
            raise

    async def hotplug_remove(self, pid: int) -> None:
        ifname = self.ifname
        if self._nictype() == "macvlan" or not (self._volatile("host_name") or self.config.get("host_name")):
            await asyncio.to_thread(run_in_netns, pid, lambda: host.delete_link(ifname))
        await self._cleanup()
