"""Device changes applied to a running instance (PUT/PATCH of its devices): hot-pluggable devices
that were removed or changed are unplugged, new or changed ones plugged. Other device changes take
effect at the next start."""
from __future__ import annotations

import logging

from corral.instance.devices import device_class, instance_devices

log = logging.getLogger(__name__)


def _hotpluggable(conf: dict) -> bool:
    if conf.get("type") == "disk" and conf.get("path") == "/" and not conf.get("source"):
        return False   # the root disk is the instance volume, never hot-plugged
    try:
        return device_class(conf.get("type", "")).hotpluggable
    except Exception:  # noqa: BLE001 - unknown or unimplemented types are not hot-plugged
        return False


async def apply(daemon, old, new, pid: int) -> None:
    """`old`, `new`: Loaded instances before and after the change. On failure, what was plugged by
    this call is unplugged again and the error raised (the caller restores the record)."""
    gone = [n for n, c in old.devices.items() if new.devices.get(n) != c and _hotpluggable(c)]
    came = [n for n, c in new.devices.items() if old.devices.get(n) != c and _hotpluggable(c)]
    old_devs = {d.name: d for d in instance_devices(daemon, old)}
    new_devs = {d.name: d for d in instance_devices(daemon, new)}
    removed = []
    plugged = []
    try:
        for n in gone:
            if n in old_devs:
                await old_devs[n].hotplug_remove(pid)
                removed.append(old_devs[n])
                await old_devs[n].stop()
        for n in came:
            if n in new_devs:
                await new_devs[n].hotplug_add(pid)
                plugged.append(new_devs[n])
    except BaseException:
        for dev in reversed(plugged):
            try:
                await dev.hotplug_remove(pid)
            except Exception:  # noqa: BLE001 - best effort while reporting the first error
                log.exception("unplugging device %s again failed", dev.name)
        for dev in reversed(removed):
            try:
                await dev.hotplug_add(pid)
            except Exception:  # noqa: BLE001
                log.exception("plugging device %s back failed", dev.name)
        raise


async def apply_vm(daemon, vm, old, new) -> None:
    """The same for a running virtual machine (corral/instance/vm.py): NICs are plugged into and
    unplugged from QEMU over QMP; other device changes wait for the next start."""
    from corral.instance.devices.nic import Nic
    gone = [n for n, c in old.devices.items() if new.devices.get(n) != c and _hotpluggable(c)]
    came = [n for n, c in new.devices.items() if old.devices.get(n) != c and _hotpluggable(c)]
    old_devs = {d.name: d for d in instance_devices(daemon, old)}
    new_devs = {d.name: d for d in instance_devices(daemon, new)}
    plugged = []
    for n in gone:
        if isinstance(old_devs.get(n), Nic):
            await vm.hotunplug_nic(old_devs[n])
    try:
        for n in came:
            if isinstance(new_devs.get(n), Nic):
                new_devs[n].inst = new
                await vm.hotplug_nic(new_devs[n])
                plugged.append(new_devs[n])
    except BaseException:
        for dev in reversed(plugged):
            try:
                await vm.hotunplug_nic(dev)
            except Exception:  # noqa: BLE001 - best effort while reporting the first error
                log.exception("unplugging device %s again failed", dev.name)
        raise
