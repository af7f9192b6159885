"""proxy devices: forward a tcp/udp/unix address between the host and the instance, with the
sockets driven by the daemon's event loop (corral/network/proxy.py), not a process per device."""
from __future__ import annotations

import asyncio

from corral.errors import NotImplementedFeature
from corral.config.keys import is_true
from corral.instance.devices.base import Device, RunConfig
from corral.network.proxy import ProxyAddressError, check_pair, parse_address

_KEYS = {"type", "listen", "connect", "bind", "nat", "proxy_protocol", "security.uid", "security.gid",
         "uid", "gid", "mode"}


class Proxy(Device):
    type = "proxy"
    hotpluggable = True

    def validate(self) -> None:
        c = self.config
        for k in c:
            if k not in _KEYS:
                raise self._bad(f'invalid key "{k}" for a proxy device')
        for k in ("listen", "connect"):
            if not c.get(k):
                raise self._bad(f'Missing required "{k}" property')
        try:
            listen, connect = parse_address(c["listen"]), parse_address(c["connect"])
            check_pair(listen, connect)
        except ProxyAddressError as e:
            raise self._bad(str(e)) from None
        if c.get("bind", "host") not in ("host", "instance", "container"):
            raise self._bad(f'Invalid value for "bind": "{c["bind"]}" (host or instance)')
        if is_true(c.get("nat")):
            raise NotImplementedFeature("proxy devices with nat=true")
        if is_true(c.get("proxy_protocol")):
            raise NotImplementedFeature("proxy devices with proxy_protocol=true")
        for k in ("security.uid", "security.gid"):
            if c.get(k) not in (None, "", "0"):
                raise NotImplementedFeature(f"proxy devices with {k}")
        for k in ("uid", "gid"):
            if c.get(k) and not c[k].isdigit():
                raise self._bad(f'Invalid value for "{k}": "{c[k]}"')
        if c.get("mode"):
            try:
                int(c["mode"], 8)
            except ValueError:
                raise self._bad(f'Invalid value for "mode": "{c["mode"]}"') from None

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
