"""disk devices: the root disk (the instance volume itself) and host paths bind-mounted inside."""
from __future__ import annotations

import os

from corral.errors import BadRequest, NotImplementedFeature
from corral.instance.devices.base import Device, RunConfig

_KEYS = {"type", "path", "source", "pool", "readonly", "optional", "recursive", "size", "propagation",
         "shift", "raw.mount.options", "limits.read", "limits.write", "limits.max", "required"}


def _true(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1", "yes", "on")


class Disk(Device):
    type = "disk"
    hotpluggable = True

    @property
    def is_root(self) -> bool:
        return self.config.get("path") == "/" and not self.config.get("source")

    def validate(self) -> None:
        for k in self.config:
            if k not in _KEYS:
                raise BadRequest(f'Device "{self.name}": invalid key "{k}" for a disk device')
        path = self.config.get("path")
        if not path:
            raise BadRequest(f'Device "{self.name}": disk devices need a "path"')
        if self.is_root:
            if not self.config.get("pool"):
                raise BadRequest(f'Device "{self.name}": the root disk needs a "pool"')
            return
        source = self.config.get("source", "")
        if not source:
            raise BadRequest(f'Device "{self.name}": disk devices other than the root disk need a "source"')
        if not path.startswith("/"):
            raise BadRequest(f'Device "{self.name}": "path" must be absolute')
        if self.config.get("pool"):
            return   # a custom volume of a pool: resolved by the storage layer at start
        if not source.startswith("/"):
            raise BadRequest(f'Device "{self.name}": "source" must be an absolute host path or a volume with "pool"')

    def host_source(self) -> str:
        if self.config.get("pool"):
            raise NotImplementedFeature("custom storage volumes as disk devices")
        return self.config["source"]

    async def start(self) -> RunConfig:
        if self.is_root:
            return RunConfig()
        source = self.host_source()
        if not os.path.exists(source):
            if _true(self.config.get("optional")):
                return RunConfig()
            raise BadRequest(f'Device "{self.name}": source path "{source}" doesn\'t exist')
        opts = ["rbind" if _true(self.config.get("recursive")) else "bind",
                "create=dir" if os.path.isdir(source) else "create=file"]
        if _true(self.config.get("readonly")):
            opts.append("ro")
        if _true(self.config.get("optional")):
            opts.append("optional")
        return RunConfig(mounts=[(source, self.config["path"], ",".join(opts))])


class NoneDevice(Device):
    """type=none masks a device inherited from a profile."""
    type = "none"

    def validate(self) -> None:
        extra = set(self.config) - {"type"}
        if extra:
            raise BadRequest(f'Device "{self.name}": invalid key "{sorted(extra)[0]}" for a none device')
