"""proxy devices: forward a tcp/udp/unix address between the host and the instance, with the
sockets driven by the daemon's event loop (corral/network/proxy.py), not a process per device."""
from __future__ import annotations

import asyncio

from corral.config.devices import PROXY, check_device
from corral.instance.devices.base import Device, RunConfig
from corral.network.proxy import ProxyAddressError, check_pair, parse_address



class Proxy(Device):
    type = "proxy"
    hotpluggable = True

    def validate(self) -> None:
        c = self.config
        check_device(PROXY, self.name, "proxy", c)
        for k in ("listen", "connect"):
            if not c.get(k):
                raise self._bad(f'Missing required "{k}" property')
        try:
            listen, connect = parse_address(c["listen"]), parse_address(c["connect"])
            check_pair(listen, connect)
        except ProxyAddressError as e:
            raise self._bad(str(e)) from None

    @property
    def _key(self) -> tuple[str, str, str]:
        return (self.inst.project, self.inst.name, self.name)

    def _config(self) -> dict[str, str]:
        c = dict(self.config)
        if c.get("bind") == "container":
            c["bind"] = "instance"
        return c

    async def start(self) -> RunConfig:
        loop = asyncio.get_running_loop()
        key, conf = self._key, self._config()

        def hook(pid: int) -> None:
            asyncio.run_coroutine_threadsafe(self.d.proxies.start_device(key, conf, pid), loop).result(30)
        return RunConfig(post_start=[hook])

    async def stop(self) -> None:
        await self.d.proxies.stop_device(self._key)

    async def hotplug_add(self, pid: int) -> None:
        try:
            await self.d.proxies.start_device(self._key, self._config(), pid)
        except OSError as e:
            raise self._bad(f"Error occurred when starting proxy device: {e}") from None

    async def hotplug_remove(self, pid: int) -> None:
        await self.d.proxies.stop_device(self._key)
