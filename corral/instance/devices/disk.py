"""disk devices: the root disk (the instance volume itself) and host paths bind-mounted inside."""
from __future__ import annotations

import asyncio
import os

from corral.errors import BadRequest, NotImplementedFeature, NotFound
from corral.config.keys import is_true
from corral.config.devices import DISK, NONE, check_device, parse_disk_path
from corral.instance.devices.base import Device, RunConfig
from corral.storage import nsmount



class Disk(Device):
    type = "disk"
    hotpluggable = True

    def __init__(self, daemon, inst, name: str, config: dict[str, str]):
        # LXD takes a relative path from "/": "mnt/x" is "/mnt/x".
        if config.get("path") and not config["path"].startswith("/"):
            config = {**config, "path": parse_disk_path(config["path"])}
        super().__init__(daemon, inst, name, config)

    @property
    def is_root(self) -> bool:
        return self.config.get("path") == "/" and not self.config.get("source")

    @property
    def optional(self) -> bool:
        """required=false (or LXD's older optional=true): a missing source is skipped."""
        return is_true(self.config.get("optional")) or not is_true(self.config.get("required"), True)

    def validate(self) -> None:
        check_device(DISK, self.name, "disk", self.config)
        path = self.config.get("path")
        if not path:
            raise BadRequest(f'Device "{self.name}": disk devices need a "path"')
        if self.config.get("size") and not self.is_root:
            raise NotImplementedFeature("a size on a disk device other than the root disk")
        if self.is_root:
            if not self.config.get("pool"):
                raise BadRequest(f'Device "{self.name}": the root disk needs a "pool"')
            if self.config.get("size") and self.inst is not None and \
                    (self.inst.rec.get("type") or "container") == "container":
                raise NotImplementedFeature("a size on a container's root disk (volume quotas through the root "
                                            "disk device); set the volume's own \"size\"")
            return
        source = self.config.get("source", "")
        if not source:
            raise BadRequest(f'Device "{self.name}": disk devices other than the root disk need a "source"')
        if self.config.get("pool"):
            if self.config["pool"] not in self.d.pools.names():
                raise BadRequest(f'Device "{self.name}": storage pool "{self.config["pool"]}" doesn\'t exist')
            if "/" in source:
                raise BadRequest(f'Device "{self.name}": "source" must be a custom volume name of the pool')
            if self.d.volumes.is_block(self.config["pool"], self.inst.project if self.inst else None, source):
                raise BadRequest(f'Failed add validation for device "{self.name}": '
                                 "Custom block volumes cannot be used on containers")
            return   # a custom volume of a pool: resolved by the storage layer at start
        if not source.startswith("/"):
            raise BadRequest(f'Device "{self.name}": "source" must be an absolute host path or a volume with "pool"')

    async def _source(self) -> tuple[str, bool]:
        """The host path to mount and whether the mount is idmapped to the container."""
        pool = self.config.get("pool")
        idmap = self.d.instances.idmap(self.inst.config)
        if not pool:   # shift=true: an idmapped bind of a host path
            return self.config["source"], is_true(self.config.get("shift")) and idmap is not None
        try:
            return await self.d.volumes.attach_source(pool, self.inst.project, self.config["source"], idmap,
                                                      self.inst.name)
        except NotFound:
            raise BadRequest(f'Device "{self.name}": storage volume "{self.config["source"]}" doesn\'t exist '
                             f'in pool "{pool}"') from None

    def _options(self, source: str) -> list[str]:
        opts = ["rbind" if is_true(self.config.get("recursive")) else "bind",
                "create=dir" if os.path.isdir(source) else "create=file"]
        if is_true(self.config.get("readonly")):
            opts.append("ro")
        return opts

    async def start(self) -> RunConfig:
        if self.is_root:
            return RunConfig()
        source, idmapped = await self._source()
        if not os.path.exists(source):
            if self.optional:
                return RunConfig()
            raise BadRequest(f'Device "{self.name}": source path "{source}" doesn\'t exist')
        # Attached from a root helper once the container runs: liblxc cannot idmap a mount entry,
        # and the container's root cannot reach a pool's volumes, which are root-only
        # (storage/perms.py). Host paths stay mount entries (resolved by the container's root).
        if idmapped or self.config.get("pool"):
            return RunConfig(post_start=[lambda pid: self._attach(pid, source, idmapped)])
        opts = self._options(source)
        if self.optional:
            opts.append("optional")
        return RunConfig(mounts=[(source, self.config["path"], ",".join(opts))])

    def _attach(self, pid: int, source: str, idmapped: bool) -> None:
        extra = [o for o, on in (("ro", is_true(self.config.get("readonly"))), ("idmap", idmapped),
                                 ("recursive", is_true(self.config.get("recursive")))) if on]
        try:
            nsmount.run("add", str(pid), source, self.config["path"], *extra)
        except OSError as e:
            raise BadRequest(f'Device "{self.name}": failed to mount {source} at {self.config["path"]}: {e}')

    async def hotplug_add(self, pid: int) -> None:
        if self.is_root:
            raise BadRequest("The root disk cannot be changed while the instance is running")
        source, idmapped = await self._source()
        if not os.path.exists(source):
            if self.optional:
                return
            raise BadRequest(f'Device "{self.name}": source path "{source}" doesn\'t exist')
        await asyncio.to_thread(self._attach, pid, source, idmapped)

    async def hotplug_remove(self, pid: int) -> None:
        if self.is_root:
            raise BadRequest("The root disk cannot be changed while the instance is running")
        try:
            await asyncio.to_thread(nsmount.run, "remove", str(pid), self.config["path"])
        except OSError as e:
            if "Invalid argument" not in str(e) and "No such file" not in str(e):   # not mounted
                raise BadRequest(f'Device "{self.name}": failed to unmount {self.config["path"]}: {e}')


class NoneDevice(Device):
    """type=none masks a device inherited from a profile."""
    type = "none"

    def validate(self) -> None:
        check_device(NONE, self.name, "none", self.config)
