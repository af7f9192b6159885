"""Storage pieces without a daemon: sizes, volume config, idmap shifting, the fake driver."""
import os

import pytest

from corral.errors import BadRequest, NotImplementedFeature
from corral.idmap import IdmapEntry
from corral.storage import driver_class
from corral.storage.drivers.fake import FakeDriver
from corral.storage.pool import Pool
from corral.storage.volume import Volume
from corral.storage.shift import shift_id, shift_tree
from corral.storage.sizes import parse_size
from corral.storage.volumes import check_volume_config

MAP = [IdmapEntry(True, False, 100000, 0, 65536), IdmapEntry(False, True, 100000, 0, 65536)]
OTHER = [IdmapEntry(True, False, 300000, 0, 65536), IdmapEntry(False, True, 300000, 0, 65536)]


def test_parse_size():
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("1024") == 1024
    with pytest.raises(BadRequest):
        parse_size("lots")


def test_volume_config_validation():
    assert check_volume_config({"size": "1GiB", "user.x": "y"}) == {"size": "1GiB", "user.x": "y"}
    for bad in ({"nope": "1"}, {"size": "big"}, {"security.shifted": "maybe"},
                {"security.shifted": "true", "security.unmapped": "true"}, {"snapshots.expiry": "soon"}):
        with pytest.raises(BadRequest):
            check_volume_config(bad)
    assert check_volume_config({"snapshots.schedule": "@daily, 5 * * * *"}, "btrfs")
    with pytest.raises(BadRequest):
        check_volume_config({"snapshots.schedule": "sometimes"})


def test_shift_ids():
    assert shift_id(0, None, MAP, True) == 100000
    assert shift_id(100005, MAP, None, False) == 5
    assert shift_id(100005, MAP, OTHER, True) == 300005
    assert shift_id(5, MAP, OTHER, True) == 5   # not in the old map: left alone


def test_shift_tree(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    os.symlink("f", tmp_path / "d" / "l")
    assert shift_tree(str(tmp_path), None, MAP) == 4
    assert {os.lstat(p).st_uid for p in (tmp_path, tmp_path / "d", tmp_path / "d" / "f", tmp_path / "d" / "l")} \
        == {100000}
    assert shift_tree(str(tmp_path), MAP, MAP) == 0
    shift_tree(str(tmp_path), MAP, None)
    assert os.lstat(tmp_path / "d" / "f").st_uid == 0


def test_registry_and_unavailable_drivers():
    assert driver_class("dir").name == "dir" and driver_class("btrfs").name == "btrfs"
    with pytest.raises(BadRequest, match="device-mapper"):
        driver_class("lvm")
    with pytest.raises(BadRequest, match='Unknown driver'):
        driver_class("nope")


def test_fake_driver_volumes(tmp_path):
    drv = FakeDriver("p", str(tmp_path / "pool"), {})
    drv.create_pool()
    vol = Volume("p", "default_a", "custom")
    drv.create_volume(vol)
    (tmp_path / "pool" / "custom" / "default_a" / "f").write_text("1")
    drv.create_volume_snapshot(vol.snapshot("s0"))
    assert open(os.path.join(drv.mount_volume(vol.snapshot("s0")), "f")).read() == "1"
    with pytest.raises(Exception):
        drv.create_volume_snapshot(vol.snapshot("s0"))
    with pytest.raises(Exception, match="not empty"):
        drv.delete_pool()
    drv.delete_volume(vol)
    assert not drv.has_volume(vol) and not drv.list_snapshots(vol)
    drv.delete_pool()
    assert not os.path.exists(tmp_path / "pool")


def test_volume_objects():
    v = Volume("p", "c1", "container")
    assert v.snapshot("s1").name == "c1/s1" and v.snapshot("s1").is_snapshot
    assert v.snapshot("s1").parent() == v and v.snapshot("s1").snapshot_name == "s1"
    with pytest.raises(BadRequest, match="Invalid content type"):
        Volume("p", "x", "custom", "iso")
    with pytest.raises(BadRequest, match="Invalid storage volume type"):
        Volume("p", "x", "bucket")


def _pool(tmp_path, name="p"):
    drv = FakeDriver(name, str(tmp_path / name), {})
    drv.create_pool()
    return Pool(name, drv)


def test_pool_instance_orchestration(tmp_path):
    """The pool layer on the fake driver (no root): image, instance, snapshots, copy, rename, restore."""
    pool, other = _pool(tmp_path), _pool(tmp_path, "q")

    def unpack(dest):
        os.makedirs(os.path.join(dest, "rootfs"))
        open(os.path.join(dest, "metadata.yaml"), "w").write("architecture: x86_64\n")
        open(os.path.join(dest, "rootfs", "hello"), "w").write("v1")
    pool.create_image("f" * 64, unpack)
    assert pool.has_image("f" * 64) and pool.image_fingerprints() == ["f" * 64]
    root = pool.create_instance_from_image("c1", "f" * 64)
    assert open(os.path.join(root, "rootfs", "hello")).read() == "v1"
    pool.create_instance_snapshot("c1", "s1")
    open(os.path.join(root, "rootfs", "hello"), "w").write("v2")
    pool.restore_instance("c1", "s1")
    assert open(os.path.join(pool.instance_path("c1"), "rootfs", "hello")).read() == "v1"
    other.create_instance_from_copy("c2", pool, "c1", None, ["s1"])
    assert other.snapshot_names(other.instance_volume("c2")) == ["s1"]
    with pytest.raises(Exception, match="already exists"):
        other.create_instance_from_copy("c2", pool, "c1")
    pool.rename_instance("c1", "c3")
    assert not pool.has_instance("c1") and pool.has_instance("c3") and pool.has_instance_snapshots("c3")
    pool.rename_instance_snapshot("c3", "s1", "s2")
    assert pool.snapshot_names(pool.instance_volume("c3")) == ["s2"]
    pool.delete_instance_snapshot("c3", "s2")
    assert not pool.has_instance_snapshots("c3")
    for p, v in ((pool, "c3"), (other, "c2")):
        p.delete_instance(v)
    pool.delete_image("f" * 64)
    assert pool.instance_volume_names() == [] and pool.image_fingerprints() == []
    pool.driver.delete_pool()
    other.driver.delete_pool()


def test_pool_block_volumes(tmp_path):
    pool = _pool(tmp_path)
    vol = pool.custom_volume("default", "b1", "block", {"size": "4MiB"})
    pool.create(vol)
    disk = pool.block_device(vol)
    assert os.path.getsize(disk) == 4 * 2**20
    pool.snapshot(vol, "s0")
    with open(disk, "r+b") as f:
        f.write(b"changed")
    pool.set_quota(vol, 8 * 2**20)
    assert os.path.getsize(disk) == 8 * 2**20
    with pytest.raises(Exception, match="Block volumes cannot be shrunk: Cannot be shrunk"):
        pool.set_quota(vol, 2**20)
    pool.restore(vol, "s0")
    assert os.path.getsize(pool.block_device(vol)) == 4 * 2**20
    assert open(pool.block_device(vol), "rb").read(7) == b"\0" * 7
    copy = pool.custom_volume("default", "b2", "block")
    pool.copy(copy, pool, vol, ["s0"])
    assert os.path.getsize(pool.block_device(copy)) == 4 * 2**20 and pool.snapshot_names(copy) == ["s0"]
    with pytest.raises(Exception, match="Not supported"):
        pool.usage(vol)
    default = pool.custom_volume("default", "b3", "block")
    pool.create(default)
    assert os.path.getsize(pool.block_device(default)) == 10 * 2**30   # LXD's default, sparse
    for v in (vol, copy, default):
        pool.delete(v)
    pool.driver.delete_pool()


def test_pool_refresh_brings_a_copy_up_to_date(tmp_path):
    pool = _pool(tmp_path)
    src, dst = pool.custom_volume("default", "a"), pool.custom_volume("default", "b")
    pool.create(src)
    path = pool.mount(src)
    open(os.path.join(path, "f"), "w").write("1")
    pool.snapshot(src, "s0")
    pool.copy(dst, pool, src, ["s0"])
    open(os.path.join(path, "f"), "w").write("2")
    pool.snapshot(src, "s1")
    pool.refresh(dst, pool, src, ["s0", "s1"])
    assert open(os.path.join(pool.mount(dst), "f")).read() == "2"
    assert pool.snapshot_names(dst) == ["s0", "s1"]
    assert open(os.path.join(pool.mount(dst.snapshot("s0")), "f")).read() == "1"
    for v in (src, dst):
        pool.delete(v)
    pool.driver.delete_pool()
