"""What a VM is made of, added over QMP while QEMU waits (`-S`) and, for NICs, hot-plugged later.

On q35 a hot-pluggable device sits behind a PCIe root port; root ports themselves cannot be added over
QMP (they are not hot-pluggable), so QEMU's command line declares ROOT_PORTS of them
(corral/instance/drivers/qemu.py) and every device goes into a free one. Which device holds which port
is kept in the VM's runtime dir (`ports.json`), so a restarted daemon hot-plugs into a free one too.

Boot order: QEMU builds the firmware's `bootorder` list when the machine is reset. Devices added over
QMP after QEMU started (also while it waits under -S) are not in it until the next reset, so their
`bootindex` is ignored by OVMF on the first boot (tested: tests/integration/test_vm_bootindex.py). The
boot-time devices are therefore added first and the machine reset once (`system_reset`) before `cont`:
that makes their bootindex count. Hot-plugged NICs take no bootindex (LXD's behaviour too).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from corral.instance.drivers.base import DriverError
from corral.instance.drivers.qmp import Monitor

ROOT_PORTS = 12
AGENT_PORT_NAME = "org.corral.agent"


@dataclass
class VMNic:
    name: str                 # the LXD device name (eth0)
    hwaddr: str
    tap: str = ""             # a tap interface QEMU opens by name (bridged)
    fd: int | None = None     # an open /dev/tapN (macvtap), handed over QMP
    mtu: int | None = None
    bootindex: int | None = None


@dataclass
class VMDisk:
    name: str                 # the LXD device name (root)
    path: str                 # a raw disk file or block device
    fmt: str = "raw"
    readonly: bool = False
    bootindex: int | None = None


@dataclass
class Ports:
    """Root port -> device id, kept in `ports.json` of the VM's runtime dir."""
    path: str
    used: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> "Ports":
        try:
            with open(path) as f:
                return cls(path, dict(json.load(f)))
        except (OSError, ValueError):
            return cls(path)

    def take(self, dev_id: str) -> str:
        for i in range(ROOT_PORTS):
            port = f"rp{i}"
            if port not in self.used:
                self.used[port] = dev_id
                self._save()
                return port
        raise DriverError(f"No free PCIe slot for {dev_id} (a VM has {ROOT_PORTS})")

    def give_back(self, dev_id: str) -> None:
        self.used = {p: d for p, d in self.used.items() if d != dev_id}
        self._save()

    def _save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.used, f)
        os.replace(tmp, self.path)


def add_agent_channel(mon: Monitor, ports: Ports, socket_path: str) -> None:
    """virtio-serial with the agent's port (host side: a unix socket QEMU listens on)."""
    mon.execute("chardev-add", {"id": "agent", "backend": {"type": "socket", "data": {
        "addr": {"type": "unix", "data": {"path": socket_path}}, "server": True, "wait": False}}})
    mon.execute("device_add", {"driver": "virtio-serial-pci", "id": "dev-serial", "bus": ports.take("dev-serial")})
    mon.execute("device_add", {"driver": "virtserialport", "id": "dev-agent", "chardev": "agent",
                               "name": AGENT_PORT_NAME, "bus": "dev-serial.0"})


def add_rng(mon: Monitor, ports: Ports) -> None:
    mon.execute("object-add", {"qom-type": "rng-random", "id": "rng0", "filename": "/dev/urandom"})
    mon.execute("device_add", {"driver": "virtio-rng-pci", "id": "dev-rng", "rng": "rng0",
                               "bus": ports.take("dev-rng")})


def add_disk(mon: Monitor, ports: Ports, disk: VMDisk) -> None:
    node = f"drive-{disk.name}"
    mon.execute("blockdev-add", {"driver": disk.fmt, "node-name": node, "read-only": disk.readonly,
                                 "discard": "unmap",
                                 "file": {"driver": "host_device" if _is_block(disk.path) else "file",
                                          "filename": disk.path, "aio": "threads",
                                          "cache": {"direct": False, "no-flush": False}}})
    dev_id = f"dev-disk-{disk.name}"
    args = {"driver": "virtio-blk-pci", "id": dev_id, "drive": node, "bus": ports.take(dev_id),
            "serial": disk.name[:20]}
    if disk.bootindex is not None:
        args["bootindex"] = disk.bootindex
    try:
        mon.execute("device_add", args)
    except DriverError:
        ports.give_back(dev_id)
        mon.execute("blockdev-del", {"node-name": node})
        raise


def add_nic(mon: Monitor, ports: Ports, nic: VMNic) -> None:
    netdev = f"net-{nic.name}"
    args: dict = {"type": "tap", "id": netdev, "vhost": False}
    if nic.fd is not None:
        fdname = f"fd-{nic.name}"
        mon.send_fd(nic.fd, fdname)
        args["fd"] = fdname
    else:
        args.update({"ifname": nic.tap, "script": "no", "downscript": "no"})
    mon.execute("netdev_add", args)
    dev_id = f"dev-nic-{nic.name}"
    dev = {"driver": "virtio-net-pci", "id": dev_id, "netdev": netdev, "mac": nic.hwaddr,
           "bus": ports.take(dev_id), "romfile": ""}   # no iPXE ROM: OVMF does not try to netboot
    if nic.mtu:
        dev["host_mtu"] = nic.mtu
    if nic.bootindex is not None:
        dev["bootindex"] = nic.bootindex
    try:
        mon.execute("device_add", dev)
    except DriverError:
        ports.give_back(dev_id)
        mon.execute("netdev_del", {"id": netdev})
        raise


def remove_nic(mon: Monitor, ports: Ports, name: str, wait_deleted) -> None:
    """Unplug a NIC: the guest is asked (PCIe hot-unplug), then its backend goes."""
    dev_id = f"dev-nic-{name}"
    mon.execute("device_del", {"id": dev_id})
    wait_deleted(dev_id)
    ports.give_back(dev_id)
    try:
        mon.execute("netdev_del", {"id": f"net-{name}"})
    except DriverError:
        pass


def _is_block(path: str) -> bool:
    import stat
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False
