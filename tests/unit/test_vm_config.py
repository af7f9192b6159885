"""Pure parts of the virtual-machine type: boot order from boot.priority, memory/CPU from limits.*, which
keys apply to which type (LXD 5.0.2's conditions), the firmware pair resolved through symlinks."""
from __future__ import annotations

import os

import pytest

from corral.config import instance_types
from corral.config.keys import ConfigError
from corral.errors import BadRequest
from corral.instance.drivers import qemuhost
from corral.instance.drivers.qemu import VMSpec
from corral.instance.drivers.qemudevices import VMDisk, VMNic
from corral.instance.vm import boot_order, check_config, cpus_of, memory_of


def _spec():
    return VMSpec("p_v", "u", 1, 1 << 30, False, "/n", disks=[VMDisk("rootfs", "/d")],
                  nics=[VMNic("eth0", "m0"), VMNic("eth1", "m1")])


def test_boot_order_follows_boot_priority_then_root_disk():
    spec = _spec()
    boot_order(spec, {"rootfs": {"type": "disk", "path": "/"}, "eth0": {"type": "nic"},
                      "eth1": {"type": "nic", "boot.priority": "10"}})
    assert {d.name: d.bootindex for d in spec.disks + spec.nics} == {"eth1": 0, "rootfs": 1, "eth0": 2}
    spec = _spec()
    boot_order(spec, {"rootfs": {"type": "disk", "path": "/"}, "eth0": {"type": "nic"}, "eth1": {"type": "nic"}})
    assert {d.name: d.bootindex for d in spec.disks + spec.nics} == {"rootfs": 0, "eth0": 1, "eth1": 2}


def test_memory_and_cpus():
    assert memory_of({}) == 1 << 30 and cpus_of({}) == 1   # LXD's VM defaults
    assert memory_of({"limits.memory": "512MiB"}) == 512 << 20
    assert memory_of({"limits.memory": "50%"}) == qemuhost.host_memory() // 2
    assert cpus_of({"limits.cpu": "3"}) == 3 and cpus_of({"limits.cpu": "0-1,4"}) == 3
    with pytest.raises(BadRequest, match="more than the host's memory"):
        check_config({"limits.memory": "100TiB"})
    with pytest.raises(BadRequest, match="at least 64MiB"):
        check_config({"limits.memory": "32MiB"})


def test_keys_by_instance_type():
    instance_types.check({"raw.qemu": "-m 1G", "limits.cpu": "1", "user.x": "y"}, "virtual-machine")
    instance_types.check({"raw.lxc": "lxc.environment=A=1", "security.privileged": "true"}, "container")
    with pytest.raises(ConfigError, match="^Failed creating instance record: Unknown configuration key: raw.lxc$"):
        instance_types.check({"raw.lxc": "x"}, "virtual-machine")
    with pytest.raises(ConfigError, match="Unknown configuration key: security.idmap.isolated"):
        instance_types.check({"security.idmap.isolated": "true"}, "virtual-machine", prefix="")
    with pytest.raises(ConfigError, match="Unknown configuration key: security.secureboot"):
        instance_types.check({"security.secureboot": "false"}, "container")


def test_firmware_is_resolved_through_symlinks(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    for f in ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"):
        (real / f).write_bytes(b"x")
    links = tmp_path / "links"
    links.mkdir()
    for f in ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"):
        os.symlink(real / f, links / f)
    monkeypatch.setenv("CORRAL_OVMF_PATH", str(links))
    fw = qemuhost.firmware(False)
    assert fw.code == str(real / "OVMF_CODE_4M.fd") and fw.vars == str(real / "OVMF_VARS_4M.fd")
    with pytest.raises(Exception, match="secure boot UEFI firmware"):
        qemuhost.firmware(True)
