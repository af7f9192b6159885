"""A nic device of a virtual machine: the host side is a tap (bridged, p2p: QEMU opens it by name) or
a macvtap (macvlan: QEMU gets its /dev/tapN open), and QEMU adds the virtio-net device over QMP
(corral/instance/drivers/qemudevices.py). MAC, host name, DHCP host entry and the volatile keys are the
container NIC's (corral/instance/devices/nic.py): the same LXD keys, the same clean-up on stop."""
from __future__ import annotations

import asyncio
import os
import stat

from corral.instance.devices.nic import Nic
from corral.instance.drivers.qemudevices import VMNic
from corral.network import host


async def create(dev: Nic) -> VMNic:
    """Make the host side of `dev` for a VM; the caller closes VMNic.fd once QEMU has it."""
    nictype, parent, drv, hwaddr, mtu, ingress = await dev.plan()
    fd = None
    if nictype in ("bridged", "p2p"):
        if nictype == "bridged" and not await asyncio.to_thread(host.exists, parent):
            raise dev._bad(f'Parent interface "{parent}" not found')
        host_name = dev.config.get("host_name") or host.random_ifname("tap")
        if await asyncio.to_thread(host.exists, host_name):
            raise dev._bad(f'Host interface name "{host_name}" is already in use')
        await asyncio.to_thread(host.create_tap, host_name, mtu=mtu)
        await dev.attach(host_name, nictype, parent, ingress)
        link = host_name
    else:   # macvlan: a macvtap
        host_name = ""
        link = "mc" + hwaddr.replace(":", "")
        await asyncio.to_thread(host.delete_link, link)
        try:
            ifindex = await asyncio.to_thread(host.create_macvtap, link, parent, mtu=mtu, hwaddr=hwaddr)
            fd = await asyncio.to_thread(_open_tap, link, ifindex)
        except (host.HostError, OSError) as e:
            await asyncio.to_thread(host.delete_link, link)
            raise dev._bad(str(e)) from None
    try:
        await dev.register(drv, hwaddr, host_name, link)
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    return VMNic(name=dev.name, hwaddr=hwaddr, tap=host_name, fd=fd, mtu=mtu)


def _open_tap(name: str, ifindex: int) -> int:
    """The macvtap's character device, /dev/tapN: made by devtmpfs, else by hand from sysfs."""
    path = f"/dev/tap{ifindex}"
    if not os.path.exists(path):
        with open(f"/sys/class/net/{name}/macvtap/tap{ifindex}/dev") as f:
            major, minor = (int(x) for x in f.read().strip().split(":"))
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(major, minor))
    return os.open(path, os.O_RDWR | os.O_CLOEXEC)
