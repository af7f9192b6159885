"""`lxc storage volume list` and `... show` / state of VM instance volumes (issue 14): a VM's volume
is listed as type virtual-machine, content type block, used by its instance; containers' stay type
container; the state's usage is what the VM's disk and config files allocate and its total the
disk's size. The Volumes layer over a stub daemon (instances given, records of edits stubbed)."""
import asyncio
import os
import contextlib

import pytest

from corral.instance.model import Loaded
from corral.storage import instvolumes
from corral.storage.drivers.fake import FakeDriver
from corral.storage.pool import Pool
from corral.storage import volumes as volumes_mod
from corral.storage.volumes import Volumes

GiB = 2**30


class _Pools:
    def __init__(self, pool):
        self.p = pool

    def pool(self, name):
        assert name == self.p.name
        return self.p

    usable = pool

    def available(self, name):
        return True


class _Instances:
    def __init__(self, insts):
        self.insts = insts

    async def load_all(self, project):
        return [i for i in self.insts if project in (None, i.project)]


class _Db:
    @contextlib.asynccontextmanager
    async def session(self):
        yield None


class _Projects:
    def holder(self, feature, project):
        return project


class _Daemon:
    def __init__(self, pool, insts):
        self.pools, self.instances, self.db, self.events = _Pools(pool), _Instances(insts), _Db(), None
        self.projects = _Projects()


def _inst(name, type_, pool="p"):
    return Loaded(rec={"name": name, "project": "default", "type": type_}, config={},
                  devices={"root": {"type": "disk", "path": "/", "pool": pool}})


@pytest.fixture
def vols(tmp_path, monkeypatch):
    drv = FakeDriver("p", str(tmp_path / "pool"), {})
    drv.create_pool()
    pool = Pool("p", drv)
    edited = {("virtual-machine", "vm1"): {"description": "my vm", "config": {"user.a": "b"}}}

    async def records(db, p, project, vtype="container"):
        return {n: r for (t, n), r in edited.items() if t == vtype}
    monkeypatch.setattr(instvolumes, "records", records)

    async def no_custom(tx, pool, project=None):
        return []
    monkeypatch.setattr(volumes_mod.q, "volumes", no_custom)
    insts = [_inst("c1", "container"), _inst("vm1", "virtual-machine"), _inst("vm2", "virtual-machine", "other")]
    pool.create_instance_empty("vm1", vtype="virtual-machine")
    yield Volumes(_Daemon(pool, insts)), pool
    pool.delete_instance("vm1", vtype="virtual-machine")
    drv.delete_pool()


def test_vm_volumes_listed_as_lxd_lists_them(vols):
    v, _ = vols
    out = asyncio.run(v.list("p", "default", None))
    by = {(x["type"], x["name"]): x for x in out}
    assert set(by) == {("container", "c1"), ("virtual-machine", "vm1")}   # vm2's root is in another pool
    vm = by[("virtual-machine", "vm1")]
    assert vm["content_type"] == "block" and vm["used_by"] == ["/1.0/instances/vm1"]
    assert vm["description"] == "my vm" and vm["config"] == {"user.a": "b"}
    assert by[("container", "c1")]["content_type"] == "filesystem"
    assert [x["name"] for x in asyncio.run(v.list("p", "default", "virtual-machine"))] == ["vm1"]
    assert [x["name"] for x in asyncio.run(v.list("p", "default", "container"))] == ["c1"]
    assert asyncio.run(v.get("p", "default", "virtual-machine", "vm1"))["type"] == "virtual-machine"


def test_vm_volume_state(vols):
    v, pool = vols
    disk = pool.instance_block_path("vm1")
    st = asyncio.run(v.state("p", "default", "virtual-machine", "vm1"))["usage"]
    assert st["total"] == 10 * GiB and st["used"] < 2**20
    with open(disk, "r+b") as f:
        f.seek(GiB)
        f.write(b"x" * (4 << 20))
    pool.grow_instance_disk("vm1", 12 * GiB)
    st = asyncio.run(v.state("p", "default", "virtual-machine", "vm1"))["usage"]
    assert st["total"] == 12 * GiB and 4 << 20 <= st["used"] < 6 << 20


def test_image_volumes_of_vm_images_are_block(vols, tmp_path):
    """In a pool that keeps image volumes (btrfs), a VM image's is listed with content type block."""
    import shutil
    if not shutil.which("qemu-img"):
        pytest.skip("needs qemu-img")
    import vmfixtures as fx
    from corral.image.vmunpack import import_vm_split
    v, pool = vols
    pool.driver.optimized_images = True
    meta, disk = fx.vm_image(str(tmp_path / "img"), 32, "raw")
    vm_fp, ct_fp = "a" * 64, "b" * 64
    pool.create_image(vm_fp, lambda d: import_vm_split(meta, disk, d), vtype="virtual-machine")

    def container_image(d):
        os.makedirs(os.path.join(d, "rootfs"))
        with open(os.path.join(d, "metadata.yaml"), "w") as f:
            f.write("architecture: x86_64\n")
    pool.create_image(ct_fp, container_image)
    try:
        out = {x["name"]: x for x in asyncio.run(v.list("p", "default", "image"))}
        assert out[vm_fp]["content_type"] == "block" and out[ct_fp]["content_type"] == "filesystem"
    finally:
        pool.delete_image(vm_fp)
        pool.delete_image(ct_fp)
