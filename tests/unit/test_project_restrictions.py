"""The pure checks of corral/project_restrictions.py and operation visibility (corral/api/auth.py)."""
from __future__ import annotations

import os

import pytest

from corral import config
from corral.api.auth import can_see_operation
from corral.errors import Forbidden
from corral.operations import OperationManager
from corral.project_restrictions import check_entity, check_volatile, device_error, disk_path_allowed, setting

R = {"restricted": "true"}


def refuse(cfg=None, devices=None, pcfg=R, kind="container"):
    with pytest.raises(Forbidden) as e:
        check_entity("p", pcfg, kind, "c", cfg or {}, devices or {})
    return e.value.message


def test_defaults_are_the_blocking_values():
    assert setting(R, "restricted.containers.lowlevel") == "block"
    assert setting(R, "restricted.containers.privilege") == "unprivileged"
    assert setting(R, "restricted.devices.disk") == "managed"
    assert setting(R, "restricted.devices.nic") == "managed"
    assert setting(R, "restricted.snapshots") == "block"
    with pytest.raises(config.ConfigError):
        config.validate(config.PROJECT, {"restricted.devices.disk": "sometimes"})
    with pytest.raises(config.ConfigError):
        config.validate(config.PROJECT, {"restricted.idmap.uid": "10-5"})
    assert config.validate(config.PROJECT, {"restricted": "true", "restricted.idmap.uid": "1000,2000-2010"})


def test_config_checks():
    assert refuse({"raw.lxc": "x"}) == 'Use of low-level config "raw.lxc" on container "c" of project "p" is forbidden'
    assert "Privileged containers are forbidden" in refuse({"security.privileged": "true"})
    assert "Container nesting is forbidden" in refuse({"security.nesting": "1"})
    assert 'low-level config "security.idmap.size"' in refuse({"security.idmap.size": "65536"})
    check_entity("p", R, "container", "c", {"security.privileged": "false", "user.x": "1"}, {})
    # Allowed by the project's keys.
    check_entity("p", {**R, "restricted.containers.lowlevel": "allow"}, "container", "c", {"raw.lxc": "x"}, {})
    check_entity("p", {**R, "restricted.containers.privilege": "allow"}, "container", "c",
                 {"security.privileged": "true"}, {})
    # A profile needs the VM low-level switch too (it may reach either instance type), as in LXD.
    assert "raw.lxc" in refuse({"raw.lxc": "x"}, pcfg={**R, "restricted.containers.lowlevel": "allow"}, kind="profile")
    # isolated: containers must have security.idmap.isolated=true.
    iso = {**R, "restricted.containers.privilege": "isolated"}
    assert "Non-isolated containers are forbidden" in refuse({}, pcfg=iso)
    check_entity("p", iso, "container", "c", {"security.idmap.isolated": "true"}, {})
    # Not restricted: nothing is checked by the callers; the pure check is only about the rules.
    check_entity("p", {**R, "restricted.containers.lowlevel": "allow", "restricted.containers.privilege": "allow",
                       "restricted.containers.nesting": "allow"}, "container", "c",
                 {"raw.lxc": "x", "security.privileged": "true", "security.nesting": "true"}, {})


def test_raw_idmap_ranges():
    p = {**R, "restricted.idmap.uid": "1000-1009", "restricted.idmap.gid": "2000"}
    check_entity("p", p, "container", "c", {"raw.idmap": "uid 1000-1009 0-9\ngid 2000 0"}, {})
    assert 'element 1' in refuse({"raw.idmap": "uid 1000 0\nboth 1000 0"}, pcfg=p)
    assert 'element 0' in refuse({"raw.idmap": "both 0 0"}, pcfg=R)
    assert "Invalid raw.idmap line 1" in refuse({"raw.idmap": "uid zero 0"}, pcfg=p)


def test_devices(tmp_path):
    root = {"type": "disk", "path": "/", "pool": "default"}
    assert device_error(R, root) is None
    assert device_error(R, {"type": "disk", "source": "/", "path": "/mnt"}) == \
        "Attaching disks not backed by a pool is forbidden"
    assert device_error(R, {"type": "disk", "source": "vol", "pool": "default", "path": "/mnt"}) is None
    assert device_error({**R, "restricted.devices.disk": "block"},
                        {"type": "disk", "source": "vol", "pool": "default", "path": "/mnt"}) == "Disk devices are forbidden"
    assert device_error(R, {"type": "nic", "nictype": "macvlan", "parent": "eth0"}) == \
        "Only managed network devices are allowed"
    assert device_error(R, {"type": "nic", "network": "br0"}) is None
    assert device_error({**R, "restricted.networks.access": "br1"}, {"type": "nic", "network": "br0"}) == \
        "Network not allowed in project"
    assert device_error({**R, "restricted.devices.nic": "block"}, {"type": "nic", "network": "br0"}) == \
        "Network devices are forbidden"
    for t, msg in (("proxy", "Proxy devices are forbidden"), ("unix-char", "Unix character devices are forbidden"),
                   ("gpu", "GPU devices are forbidden"), ("usb", "USB devices are forbidden")):
        assert device_error(R, {"type": t}) == msg
        assert device_error({**R, f"restricted.devices.{t}": "allow"}, {"type": t}) is None
    msg = refuse(devices={"root": root, "h": {"type": "disk", "source": "/", "path": "/mnt"}})
    assert msg.startswith('Invalid device "h" on container "c" of project "p": ')


def test_disk_paths_whole_components_and_symlinks(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    os.symlink("/", allowed / "escape")
    p = {"restricted.devices.disk.paths": str(allowed)}
    assert disk_path_allowed(p, str(allowed / "sub"))
    assert disk_path_allowed(p, str(allowed))
    assert not disk_path_allowed(p, str(allowed) + "-not")
    assert not disk_path_allowed(p, str(allowed / "escape"))
    assert not disk_path_allowed(p, str(allowed / ".." / "x"))
    assert not disk_path_allowed(p, "relative")
    assert disk_path_allowed({}, "/")   # no list: every path (LXD), when restricted.devices.disk=allow


def test_volatile_keys():
    check_volatile("p", R, "c", {"volatile.base_image": "x", "volatile.eth0.hwaddr": "00:16:3e:00:00:01"}, {})
    with pytest.raises(Forbidden, match='Setting "volatile.idmap.next"'):
        check_volatile("p", R, "c", {"volatile.idmap.next": "[]"}, {})
    with pytest.raises(Forbidden, match='Changing "volatile.idmap.current"'):
        check_volatile("p", R, "c", {"volatile.idmap.current": "[]"}, {"volatile.idmap.current": "[{}]"})
    check_volatile("p", R, "c", {"volatile.idmap.current": "[{}]"}, {"volatile.idmap.current": "[{}]"})


class _Events:
    def __init__(self):
        self.sent = []

    def send(self, type_, meta, project=None):
        self.sent.append((type_, meta["id"], project))


class _Req(dict):
    pass


def test_operations_registered_elsewhere_follow_their_requester():
    events = _Events()
    ops = OperationManager(events)
    op = ops.create(project="default", description="Deleting image")
    other = ops.create(project="default", description="Someone else's")
    ops.claim(op.id, project="p1", owner="f" * 64)
    restricted = _Req(allowed_projects={"p1"}, client_fingerprint="f" * 64)
    stranger = _Req(allowed_projects={"p1"}, client_fingerprint="e" * 64)
    assert can_see_operation(restricted, op) and not can_see_operation(restricted, other)
    assert can_see_operation(stranger, op)   # visible in p1, where it was asked for
    assert not can_see_operation(_Req(allowed_projects={"p2"}, client_fingerprint="e" * 64), op)
    assert can_see_operation(_Req(allowed_projects={"p2"}, client_fingerprint="f" * 64), op)   # its starter
    assert op in ops.all("p1") and other not in ops.all("p1")
    op.finish()
    assert ("operation", op.id, "p1") in events.sent and ("operation", op.id, "default") in events.sent
