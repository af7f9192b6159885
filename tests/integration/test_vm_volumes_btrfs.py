"""VM instance volumes (issue 14) on a real btrfs pool (a loop file made and removed here): the
scenarios of tests/vmscenarios.py, plus what only btrfs has: every VM volume and snapshot its own
subvolume, the disk nodatacow (chattr +C before data), the image volume read-only and instances
snapshots of it (sharing its extents), and copies from and to a dir pool."""
import os
import subprocess

import pytest

import vmfixtures as fx
import vmscenarios as sc
from corral.storage.drivers.base import SUBDIRS
from corral.storage.drivers.btrfs import BtrfsDriver
from corral.storage.drivers.dir import DirDriver
from corral.storage.pool import Pool
from helpers import unique

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(bool(fx.missing_tools()), reason=f"needs {fx.missing_tools()}")]
VM = "virtual-machine"


@pytest.fixture(scope="module")
def btrfs_pool(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vmbtrfs")
    name = unique("vb")
    cfg = BtrfsDriver.fill_config(name, {"size": "2GiB"}, str(tmp / "pool"), str(tmp / "disks"))
    drv = BtrfsDriver(name, BtrfsDriver.pool_path(name, cfg, str(tmp / "pool")), cfg)
    drv.create_pool()
    try:
        yield Pool(name, drv)
    finally:
        _teardown(drv)


def _teardown(drv) -> None:
    """Remove what a failed test left (its own checks report it), then the pool (unmounted, its
    loop file deleted)."""
    for sub in SUBDIRS:
        top = os.path.join(drv.path, sub)
        for e in sorted(os.listdir(top)) if os.path.isdir(top) else []:
            drv.remove_leftover(os.path.join(top, e))
    drv.delete_pool()


@pytest.mark.parametrize("scenario", [s for s in sc.SCENARIOS if s is not sc.image_volume], ids=lambda s: s.__name__)
def test_btrfs_vm_volume_scenario(btrfs_pool, tmp_path, scenario):
    scenario(btrfs_pool, str(tmp_path))


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_btrfs_vm_image_volume(btrfs_pool, tmp_path, fmt):
    sc.image_volume(btrfs_pool, str(tmp_path), fmt)


def _subvol(path: str) -> dict:
    out = subprocess.run(["btrfs", "subvolume", "show", path], capture_output=True, text=True, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()[1:]) if v}


def test_btrfs_vm_subvolumes_nodatacow_readonly_image(btrfs_pool, tmp_path):
    p = btrfs_pool
    fp = sc.image(p, str(tmp_path), 64)
    try:
        ipath = p.driver.volume_path(p.image_volume(fp, vtype=VM))
        assert os.lstat(ipath).st_ino == 256 and fx.nodatacow(os.path.join(ipath, "root.img"))
        assert "ro=true" in subprocess.run(["btrfs", "property", "get", "-ts", ipath, "ro"],
                                           capture_output=True, text=True).stdout
        path = p.create_instance_from_image("vm1", fp, vtype=VM)
        disk = p.instance_block_path("vm1")
        # a writable snapshot of the image volume: its parent is the image's subvolume
        assert os.lstat(path).st_ino == 256 and fx.nodatacow(path) and fx.nodatacow(disk)
        assert _subvol(path)["Parent UUID"] == _subvol(ipath)["UUID"]
        assert "ro=false" in subprocess.run(["btrfs", "property", "get", "-ts", path, "ro"],
                                            capture_output=True, text=True).stdout
        fx.write_at(disk, 0, b"written")
        # snapshots: subvolumes too, nodatacow kept; an empty VM's disk is nodatacow before data
        p.create_instance_snapshot("vm1", "s0", vtype=VM)
        spath = p.instance_path("vm1", "s0", vtype=VM)
        assert os.lstat(spath).st_ino == 256 and fx.nodatacow(p.instance_block_path("vm1", "s0"))
        p.create_instance_empty("vm2", vtype=VM)
        assert fx.nodatacow(p.instance_path("vm2", vtype=VM)) and fx.nodatacow(p.instance_block_path("vm2"))
        # the image volume is never written through an instance
        assert fx.read_at(os.path.join(ipath, "root.img"), 0, 7) != b"written"
        p.delete_instance("vm1", vtype=VM)
        p.delete_instance("vm2", vtype=VM)
    finally:
        p.delete_image(fp)
    sc.empty(p)
    assert subprocess.run(["btrfs", "subvolume", "list", "-o", p.driver.path], capture_output=True,
                          text=True).stdout.strip() == ""


def test_btrfs_vm_copy_to_and_from_dir(btrfs_pool, tmp_path):
    """Across filesystems: a new subvolume filled by a copy, made nodatacow before the disk is written."""
    drv = DirDriver("d", str(tmp_path / "dirpool"), {})
    drv.create_pool()
    try:
        dpool = Pool("d", drv)
        sc.copy_keeps_snapshots(dpool, str(tmp_path), btrfs_pool)
        dpool.create_instance_empty("vmx", vtype=VM)
        btrfs_pool.create_instance_from_copy("vmx", dpool, "vmx", vtype=VM)
        assert fx.nodatacow(btrfs_pool.instance_block_path("vmx"))
        assert os.lstat(btrfs_pool.instance_path("vmx", vtype=VM)).st_ino == 256
        btrfs_pool.delete_instance("vmx", vtype=VM)
        dpool.delete_instance("vmx", vtype=VM)
        sc.copy_keeps_snapshots(btrfs_pool, str(tmp_path), dpool)
    finally:
        _teardown(drv)
    sc.empty(btrfs_pool)
