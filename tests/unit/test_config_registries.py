"""Pool, volume and device keys in the one key registry (corral/config/), with LXD 5.0.2's keys
(../shared/lxd-5.0.2/config-keys.tsv) and LXD's error texts (taken from a real LXD 5.0.2), and one
parser per value kind (corral/config/values.py) used everywhere."""
from __future__ import annotations

import ast
import csv
import os

import pytest

import corral.config  # noqa: F401  (registers every declaration)
from corral.config import devices as dev
from corral.config import values
from corral.config.keys import ConfigError, KeyRefused, lookup
from corral.config.storage import DRIVERS, check_pool, check_volume, pool_scope, volume_scope

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TSV = os.path.join(os.path.dirname(ROOT), "shared", "lxd-5.0.2", "config-keys.tsv")


def _documented(doc: str, section: str | None = None) -> list[str]:
    with open(TSV, newline="") as f:
        return [r["key"] for r in csv.DictReader(f, delimiter="\t")
                if r["doc"] == doc and (section is None or r["section"] == section)]


def _err(fn, *args) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        fn(*args)
    assert e.value.status == 400
    return e.value


# ---- pools ------------------------------------------------------------------------------------

@pytest.mark.parametrize("driver", ["dir", "btrfs"])
def test_documented_pool_keys_are_declared_for_their_driver(driver):
    keys = _documented(f"reference/storage_{driver}.md", "Storage pool configuration")
    assert keys, "the documentation table was not found"
    for k in keys:
        assert lookup(pool_scope(driver), k) is not None, k


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_driver_has_lxds_common_pool_keys(driver):
    ok = {"source": "/srv/p", "volatile.initial_source": "/srv/p", "user.note": "x", "rsync.bwlimit": "10MiB",
          "rsync.compression": "false", "volume.size": "1GiB", "volume.security.shifted": "true",
          "volume.snapshots.expiry": "1d 2H", "volume.snapshots.pattern": "s%d",
          "volume.snapshots.schedule": "@daily"}
    assert check_pool(driver, ok) == ok


def test_pool_keys_are_per_driver():
    assert check_pool("btrfs", {"size": "1GiB", "btrfs.mount_options": "noatime"})
    # LXD 5.0.2 on a dir pool: Error: Invalid option "size" / "btrfs.mount_options"
    assert _err(check_pool, "dir", {"size": "1GiB"}).message == 'Invalid option "size"'
    assert _err(check_pool, "dir", {"btrfs.mount_options": "x"}).message == 'Invalid option "btrfs.mount_options"'
    assert _err(check_pool, "fake", {"size": "1GiB"}).message == 'Invalid option "size"'


@pytest.mark.parametrize("key", ["bogus", "volatile.foo", "volume.block.filesystem", "volume.zfs.remove_snapshots",
                                 "volume.bogus", "zfs.pool_name"])
def test_unknown_pool_key_refused_with_lxds_text(key):
    for driver in DRIVERS:
        assert _err(check_pool, driver, {key: "1"}).message == f'Invalid option "{key}"'


def test_bad_pool_value_refused_with_lxds_text():
    assert _err(check_pool, "dir", {"rsync.compression": "maybe"}).message == \
        'Invalid value for option "rsync.compression": Invalid value for a boolean "maybe"'
    assert _err(check_pool, "btrfs", {"size": "lots"}).message.startswith('Invalid value for option "size": ')
    assert _err(check_pool, "dir", {"volume.snapshots.expiry": "1d1d"}).message == \
        'Invalid value for option "volume.snapshots.expiry": Invalid expiry expression'
    assert _err(check_pool, "dir", {"source": 1}).message == "Invalid config: expected a map of strings"


# ---- volumes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("driver", ["dir", "btrfs"])
def test_documented_volume_keys_are_declared(driver):
    keys = _documented(f"reference/storage_{driver}.md", "Storage volume configuration")
    assert set(keys) >= {"size", "security.shifted", "security.unmapped", "snapshots.expiry"}
    for k in keys:
        assert lookup(volume_scope(driver), k) is not None, k
        # and each is a pool-level default (volume.<key>)
        assert lookup(pool_scope(driver), f"volume.{k}") is not None, k


@pytest.mark.parametrize("driver", DRIVERS)
def test_filesystem_volume_keys(driver):
    ok = {"size": "10MiB", "security.shifted": "true", "snapshots.expiry": "2S", "snapshots.pattern": "b%d",
          "snapshots.schedule": "0 * * * *", "user.a": "b", "volatile.idmap.last": "[]"}
    assert check_volume(driver, ok, "filesystem", "default_v") == ok


@pytest.mark.parametrize("driver", DRIVERS)
def test_block_volume_keys(driver):
    ok = {"size": "10MiB", "snapshots.expiry": "1w", "snapshots.pattern": "b%d", "user.a": "b"}
    assert check_volume(driver, ok, "block", "default_b") == ok
    # LXD 5.0.2: a block volume has no security.* nor idmap keys
    for k in ("security.shifted", "security.unmapped", "volatile.idmap.last"):
        assert _err(check_volume, driver, {k: "true"}, "block", "default_b").message == \
            f'Invalid option for volume "default_b" option "{k}"'


@pytest.mark.parametrize("key", ["bogus", "block.filesystem", "block.mount_options", "volatile.uuid",
                                 "volatile.foo", "zfs.blocksize"])
def test_unknown_volume_key_refused_with_lxds_text(key):
    for driver in DRIVERS:
        for ct in ("filesystem", "block"):
            assert _err(check_volume, driver, {key: "x"}, ct, "default_v1").message == \
                f'Invalid option for volume "default_v1" option "{key}"'


def test_bad_volume_value_refused_with_lxds_text():
    assert _err(check_volume, "dir", {"security.shifted": "maybe"}, "filesystem", "default_v2").message == \
        'Invalid value for volume "default_v2" option "security.shifted": Invalid value for a boolean "maybe"'
    assert _err(check_volume, "btrfs", {"snapshots.expiry": "1d2H"}, "block", "default_v5").message == \
        'Invalid value for volume "default_v5" option "snapshots.expiry": Invalid expiry expression'
    assert _err(check_volume, "dir", {"snapshots.schedule": "@startup"}, "filesystem", "p_v").message.startswith(
        'Invalid value for volume "p_v" option "snapshots.schedule"')
    assert "cannot both be set" in _err(check_volume, "dir", {"security.shifted": "true",
                                                              "security.unmapped": "yes"}).message


def test_storage_layer_uses_the_registry():
    """The storage layer's checks are the registry's (no key list of their own)."""
    from corral.storage.drivers.btrfs import BtrfsDriver
    from corral.storage.pools import check_pool_config
    from corral.storage.volumes import check_volume_config
    assert _err(check_pool_config, BtrfsDriver, {"rsync.compression": "x"}).message.startswith(
        'Invalid value for option "rsync.compression"')
    assert _err(check_volume_config, {"nope": "1"}, "btrfs", "filesystem", "default_x").message == \
        'Invalid option for volume "default_x" option "nope"'
    assert not hasattr(BtrfsDriver, "pool_keys")


# ---- devices ----------------------------------------------------------------------------------

@pytest.mark.parametrize("doc,scope", [("reference/devices_disk.md", dev.DISK),
                                       ("reference/devices_proxy.md", dev.PROXY)])
def test_documented_device_keys_are_declared(doc, scope):
    keys = _documented(doc)
    assert keys
    for k in keys:
        assert lookup(scope, k) is not None, k


@pytest.mark.parametrize("scope,what,ok", [
    (dev.DISK, "disk", {"type": "disk", "path": "/mnt", "source": "/srv", "readonly": "true"}),
    (dev.PROXY, "proxy", {"type": "proxy", "listen": "tcp:0.0.0.0:80", "connect": "tcp:127.0.0.1:80"}),
    (dev.nic_scope("bridged"), "bridged nic", {"type": "nic", "nictype": "bridged", "parent": "br0"}),
    (dev.nic_scope("macvlan"), "macvlan nic", {"type": "nic", "nictype": "macvlan", "parent": "eth0"}),
    (dev.nic_scope("p2p"), "p2p nic", {"type": "nic", "nictype": "p2p"}),
    (dev.NONE, "none", {"type": "none"}),
])
def test_unknown_device_key_refused_with_lxds_text(scope, what, ok):
    dev.check_device(scope, "d1", what, ok)
    with pytest.raises(ConfigError) as e:
        dev.check_device(scope, "d1", what, {**ok, "foo": "bar"})
    assert e.value.message == 'Device validation failed for "d1": Invalid device option "foo"'


def test_bad_device_value_refused_with_lxds_text():
    cases = [
        (dev.DISK, {"readonly": "maybe"}, 'Invalid value for device option "readonly": '
                                          'Invalid value for a boolean "maybe"'),
        (dev.DISK, {"shift": "maybe"}, 'Invalid value for device option "shift": Invalid value for a boolean "maybe"'),
        (dev.PROXY, {"uid": "-1"}, 'Invalid value for device option "uid": '),
        (dev.nic_scope("bridged"), {"limits.ingress": "fast"}, 'Invalid value for device option "limits.ingress": '),
    ]
    for scope, cfg, text in cases:
        with pytest.raises(ConfigError) as e:
            dev.check_device(scope, "d2", "x", cfg)
        assert not isinstance(e.value, KeyRefused)
        assert e.value.message.startswith(f'Device validation failed for "d2": {text}'), e.value.message


def test_nic_keys_are_per_nictype():
    dev.check_device(dev.nic_scope("bridged"), "n", "bridged nic", {"ipv4.address": "10.0.0.2"})
    with pytest.raises(ConfigError, match='Invalid device option "ipv4.address"'):
        dev.check_device(dev.nic_scope("macvlan"), "n", "macvlan nic", {"ipv4.address": "10.0.0.2"})


# ---- one parser per value kind ----------------------------------------------------------------

@pytest.mark.parametrize("v,out", [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True),
                                   ("false", False), ("0", False), ("no", False), ("OFF", False)])
def test_parse_bool(v, out):
    assert values.parse_bool(v) is out
    assert values.is_true(v) is out


@pytest.mark.parametrize("v", ["maybe", "", "2", "tru"])
def test_parse_bool_refuses(v):
    with pytest.raises(ValueError, match="Invalid value for a boolean"):
        values.parse_bool(v)


def test_is_true_default():
    assert values.is_true(None) is False and values.is_true("") is False
    assert values.is_true(None, True) is True and values.is_true("", True) is True
    assert values.is_true("no", True) is False


@pytest.mark.parametrize("v,seconds", [("", 0), ("30S", 30), ("5M", 300), ("6H", 21600), ("1d", 86400),
                                       ("2w", 1209600), ("1m", 2592000), ("1y", 31536000),
                                       ("1d 3H", 97200), (" 1d ", 86400)])
def test_parse_expiry_as_lxds_getexpiry(v, seconds):
    assert values.parse_expiry(v) == seconds


@pytest.mark.parametrize("v", ["1d2H", "1d 1d", "3", "1x", "d", "1d  2H", "soon"])
def test_parse_expiry_refuses_as_lxd(v):
    with pytest.raises(ValueError, match="^Invalid expiry expression$"):
        values.parse_expiry(v)


def test_parse_size_and_rate():
    assert values.parse_size("10MiB") == 10 * 2**20 and values.parse_size("1GB") == 10**9
    assert values.parse_bit_rate("10Mbit") == 10**7 and values.parse_bit_rate("500") == 500
    for bad, fn in (("ten", values.parse_size), ("10 parsecs", values.parse_bit_rate)):
        with pytest.raises(ValueError):
            fn(bad)


def test_one_definition_per_parser():
    """The modules that used to have their own parser use the one in values.py."""
    from corral import trust
    from corral.config import keys, schedule
    from corral.network import host
    assert keys.parse_bool is values.parse_bool and keys.is_true is values.is_true
    assert keys.parse_size is values.parse_size and keys.parse_expiry is values.parse_expiry
    assert trust.parse_expiry is values.parse_expiry
    assert host.parse_bit_rate is values.parse_bit_rate
    assert schedule.parse_schedule is values.parse_schedule


_BOOL_WORDS = set(values.TRUE + values.FALSE)


def _bool_literals(path: str) -> list[int]:
    """Lines of tuple/list/set literals spelling out booleans (3 or more of LXD's words)."""
    out = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            words = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if len(words & _BOOL_WORDS) >= 3:
                out.append(node.lineno)
    return out


def test_no_boolean_parsing_outside_values():
    bad = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, "corral")):
        for f in files:
            path = os.path.join(dirpath, f)
            if f.endswith(".py") and path != values.__file__:
                if lines := _bool_literals(path):
                    bad[os.path.relpath(path, ROOT)] = lines
    assert bad == {}


def test_instance_volume_keys():
    from corral.config.storage import check_instance_volume
    ok = {"user.k": "v", "volatile.idmap.last": "[]", "volatile.idmap.next": "[]"}
    assert check_instance_volume(ok, "c1") == ok
    for k in ("foo", "volatile.foo", "security.shifted", "volatile.uuid"):   # LXD 5.0.2's answers
        assert _err(check_instance_volume, {k: "1"}, "c1").message == f'Invalid option for volume "c1" option "{k}"'
    assert "root disk device" in _err(check_instance_volume, {"size": "1GiB"}, "c1").message
    with pytest.raises(KeyRefused) as e:
        check_instance_volume({"snapshots.expiry": "1d"}, "c1")
    assert e.value.status == 501 and e.value.message.startswith("not implemented: snapshots.expiry")
