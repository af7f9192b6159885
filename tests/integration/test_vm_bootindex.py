"""QEMU and `bootindex` on devices added over QMP (issue 14): does OVMF honour the boot order of a NIC
and a disk that were device_add'ed while QEMU waited under -S? Measured with this host's QEMU and OVMF by
which boot option OVMF tries first (its console log): an empty disk ("UEFI Misc Device" fails) or the
NIC (PXE). Corral's driver resets the machine once before `cont` so that the order counts; without the
reset QEMU's firmware boot order does not include the hot-added devices."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from corral.instance.drivers.qemu import QemuDriver, VMSpec
from corral.instance.drivers.qemudevices import VMDisk, VMNic
from corral.network import host
from tests.helpers import unique

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or os.geteuid() != 0,
                                reason="needs QEMU and root")
FIRST = re.compile(r'BdsDxe: failed to load Boot\d+ "UEFI Misc Device"|Start PXE over IPv4')


def _first_boot_try(tmp_path, *, reset: bool, nic_first: bool) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    disk = tmp_path / "empty.img"
    subprocess.run(["qemu-img", "create", "-f", "raw", str(disk), "16M"], check=True, capture_output=True)
    tap = unique("tap")
    host.create_tap(tap, mtu=None)
    drv = QemuDriver(str(tmp_path / "logs"))
    drv.reset_before_cont = reset
    name = unique("bi")
    try:
        drv.start(VMSpec(name=name, uuid=str(uuid.uuid4()), cpus=1, memory=256 << 20, secureboot=False,
                         nvram=str(tmp_path / f"{name}.nvram"),
                         disks=[VMDisk("root", str(disk), bootindex=1 if nic_first else 0)],
                         nics=[VMNic("eth0", "00:16:3e:00:00:01", tap=tap, bootindex=0 if nic_first else 1)]))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = FIRST.search(drv.console_log(name).decode(errors="replace"))
            if m:
                return "nic" if "PXE" in m.group(0) else "disk"
            time.sleep(0.2)
        raise AssertionError("OVMF tried no boot option within 60s")
    finally:
        drv.stop(name, force=True)
        drv.delete(name)
        host.delete_link(tap)


def test_bootindex_of_qmp_added_devices_needs_a_reset(tmp_path):
    # Without the reset: the NIC's bootindex 0 is ignored, OVMF tries the disk first (PCI order).
    assert _first_boot_try(tmp_path / "a", reset=False, nic_first=True) == "disk"
    # With it (what Corral does): the order given counts, either way round.
    assert _first_boot_try(tmp_path / "b", reset=True, nic_first=True) == "nic"
    assert _first_boot_try(tmp_path / "c", reset=True, nic_first=False) == "disk"
