"""Storage pieces without a daemon: sizes, volume config, idmap shifting, the fake driver."""
import os

import pytest

from corral.errors import BadRequest, NotImplementedFeature
from corral.instance.idmap import IdmapEntry
from corral.storage import driver_class
from corral.storage.drivers.fake import FakeDriver
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
    with pytest.raises(BadRequest, match='Invalid storage driver "nope"'):
        driver_class("nope")


def test_fake_driver_volumes(tmp_path):
    drv = FakeDriver("p", str(tmp_path / "pool"), {})
    drv.create_pool()
    src = drv.custom_dir("default_a")
    drv.create_volume(src)
    (tmp_path / "pool" / "custom" / "default_a" / "f").write_text("1")
    drv.copy_tree(src, drv.custom_snapshot_dir("default_a", "s0"))
    assert open(os.path.join(drv.custom_snapshot_dir("default_a", "s0"), "f")).read() == "1"
    with pytest.raises(Exception):
        drv.copy_tree(src, drv.custom_snapshot_dir("default_a", "s0"))
    with pytest.raises(Exception, match="not empty"):
        drv.delete_pool()
    drv.delete_tree(os.path.dirname(drv.custom_snapshot_dir("default_a", "s0")))
    drv.delete_tree(src)
    drv.delete_pool()
    assert not os.path.exists(tmp_path / "pool")
