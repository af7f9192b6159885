"""The rules of issue 9's findings 5, 6 and 10 as pure functions: key and device names, raw.lxc,
liblxc config rendering, sizes, host paths in error texts, stored-record decoding."""
import pytest

from corral import config
from corral.config import keys
from corral.db.queries.instances import _row
from corral.devices import check_devices
from corral.errors import BadRequest, hide_host_paths, public_message
from corral.instance.drivers import lxcconf
from corral.instance.drivers.base import InstanceSpec


@pytest.mark.parametrize("name", ["user.a", "environment.HTTP_PROXY", "volatile.eth0.hwaddr", "cloud-init.user-data",
                                  "user.a:b-c_d.e", "limits.kernel.nofile"])
def test_key_names_accepted(name):
    assert keys.valid_key_name(name)


@pytest.mark.parametrize("name", ["", "user.a\nb", "user.a b", "environment.A=1", "user.\u00e9", "user.a/b",
                                  "user.a\x00", "user." + "x" * 251, 5, None])
def test_key_names_refused(name):
    assert not keys.valid_key_name(name)
    with pytest.raises(BadRequest):
        keys.check_key_name(name)
    if isinstance(name, str) and name:
        assert keys.lookup(config.INSTANCE, name) is None


def test_most_specific_pattern_wins():
    assert keys.lookup(config.INSTANCE, "volatile.eth0.hwaddr").name == "volatile.*.hwaddr"
    assert keys.lookup(config.INSTANCE, "volatile.base_image").name == "volatile.*"
    with pytest.raises(BadRequest):
        config.validate(config.INSTANCE, {"volatile.eth0.hwaddr": "00:16:3e:00:00:01\nx"})


@pytest.mark.parametrize("raw", ["lxc.apparmor.profile = unconfined", "# c\n\n  lxc.mount.auto = proc:rw \n",
                                 "lxc.environment=A=1\r\nlxc.environment = B=2"])
def test_raw_lxc_accepted(raw):
    assert config.validate(config.INSTANCE, {"raw.lxc": raw})


@pytest.mark.parametrize("raw", ["x", "lxc.a = b\nnot a line", "lxc.log.file = /tmp/x", "lxc.a = b\rc",
                                 "= value", "lxc. = x"])
def test_raw_lxc_refused(raw):
    with pytest.raises(BadRequest):
        config.validate(config.INSTANCE, {"raw.lxc": raw})


@pytest.mark.parametrize("name", ["a\nb", "a b", ".x", "a/b", "x" * 64, "\u00e9", ""])
def test_device_names_refused(name):
    with pytest.raises(BadRequest):
        check_devices({name: {"type": "none"}})


def test_device_option_keys_and_values():
    with pytest.raises(BadRequest):
        check_devices({"d": {"type": "none", "a\nb": "x"}})
    with pytest.raises(BadRequest):
        check_devices({"d": {"type": "disk", "path": "/a\nlxc.hook.pre-start = x", "source": "/tmp"}})
    assert check_devices({"eth-0.a:b_c": {"type": "none"}})


def _spec(**config):
    return InstanceSpec(name="c1", rootfs="/r", config=config, idmap=None)


def test_render_keeps_every_value_on_its_line():
    text = lxcconf.render(_spec(**{"environment.A": "1\nlxc.hook.pre-start = /bin/sh\r\nx"}))
    assert "lxc.environment = A=1 lxc.hook.pre-start = /bin/sh x\n" in text
    assert not any(ln.startswith("lxc.hook") for ln in text.splitlines())


def test_render_refuses_a_stored_bad_key_or_line():
    with pytest.raises(ValueError):
        lxcconf.render(_spec(**{"environment.A=1\nlxc.hook.pre-start = /bin/sh": "x"}))
    spec = _spec()
    spec.extra.append("lxc.net.0.name = eth0\nlxc.hook.pre-start = /bin/sh")
    with pytest.raises(ValueError):
        lxcconf.render(spec)
    with pytest.raises(ValueError):
        lxcconf.render(_spec(**{"raw.lxc": "lxc.a = b\n/bin/sh"}))


def test_mount_paths_escaped():
    spec = _spec()
    spec.mounts.append(("/a b\\c\nd", "/mnt/x\ty", "bind"))
    line = [ln for ln in lxcconf.render(spec).splitlines() if "mnt" in ln][-1]
    assert line == "lxc.mount.entry = /a\\040b\\134c\\012d mnt/x\\011y none bind 0 0"


@pytest.mark.parametrize("v,n", [("7EiB", 7 * 2**60), ("9223372036854775807", 2**63 - 1), ("1.5GiB", 3 * 2**29),
                                 ("0.1kB", 100), ("10", 10)])
def test_sizes(v, n):
    assert keys.parse_size(v) == n


@pytest.mark.parametrize("v,msg", [("99999999999TB", "Overflow multiplying 99999999999 with 1000000000000"),
                                   ("8EiB", "Overflow"), ("9223372036854775808", "Invalid integer"),
                                   ("9" * 5000, "Invalid integer")])
def test_sizes_past_int64(v, msg):
    with pytest.raises(ValueError, match=msg):
        keys.parse_size(v)


def test_integers_past_int64():
    assert keys.parse_int("-9223372036854775808") == -2**63
    for v in ("9223372036854775808", "9" * 5000):
        with pytest.raises(ValueError):
            keys.parse_int(v)


def test_public_message_hides_daemon_paths():
    hide_host_paths("/var/lib/corral-unit-test")
    assert public_message("Volume directory /var/lib/corral-unit-test/storage-pools/p/containers/c1 "
                          "already exists") == "Volume directory c1 already exists"
    assert public_message("[Errno 2] No such file: '/var/lib/corral-unit-test/images/.b-1/rootfs'") == \
        "[Errno 2] No such file: 'rootfs'"
    assert public_message("/var/lib/corral-unit-testx/a") == "/var/lib/corral-unit-testx/a"


def _db_row(config=None, devices=None):
    r = {"id": 1, "project": "default", "name": "c", "node": "none", "type": 0, "architecture": 2,
         "ephemeral": 0, "stateful": 0, "description": "", "created_at": "", "last_used_at": ""}
    return _row(r, {"a": "b"} if config is None else config, devices or {}, ["default"])


def test_stored_rows_that_cannot_be_read_still_load():
    """Rows written by hand into LXD's tables: a NULL value in instances_config or
    instances_devices_config is dropped and reported; the rest loads."""
    assert "load_error" not in _db_row()
    for over in ({"config": {"a": None}}, {"devices": {"x": {"a": None}}}):
        row = _db_row(**over)
        assert row["load_error"], over
        assert isinstance(row["config"], dict) and isinstance(row["devices"], dict)
        assert isinstance(row["profiles"], list)
    assert _db_row(config={"a": "b", "n": None})["config"] == {"a": "b"}
    assert _db_row()["architecture"] == "x86_64" and _db_row()["type"] == "container"
