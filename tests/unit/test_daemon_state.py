"""corral/state.py: the typed state the daemon hands its layers, and mock mode's registries."""
import dataclasses
import os
import re

import pytest

from corral import mock, storage
from corral.instance import devices
from corral.instance.drivers import DRIVERS as INSTANCE_DRIVERS
from corral.network import DRIVERS as NETWORK_DRIVERS
from corral.state import State

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "corral")
# The layers the daemon builds with the State (corral/daemon.py), and how they name it.
LAYERS = ["image/cache.py", "image/autoupdate.py", "instance/manager.py", "network/networks.py",
          "network/proxy.py", "storage/volumes.py", "storage/volume_backups.py", "project_restrictions.py",
          "project_limits.py", "devlxd.py", "instance/backup_yaml.py", "instance/snapshot_schedule.py",
          "storage/reconcile.py", "instance/recovery.py", "instance/devices/disk.py",
          "instance/devices/nic.py", "instance/devices/proxy.py", "instance/update.py", "instance/backups.py",
          "hardening.py", "instance/live_keys.py", "instance/devices/fake.py"]
USE = re.compile(r"(?:\bself\.d|\binsts\.d|\binstances\.d|\bself\.instances\.d|\bdaemon)\.([a-z_]+)\b")


def state_names() -> set[str]:
    return {f.name for f in dataclasses.fields(State)} | {n for n in dir(State) if not n.startswith("__")}


@pytest.mark.parametrize("path", LAYERS)
def test_layers_use_only_what_the_state_has(path):
    with open(os.path.join(ROOT, path)) as f:
        used = set(USE.findall(f.read()))
    missing = sorted(used - state_names())
    assert not missing, f"{path} reaches for {missing}, which corral/state.py's State does not have"


def test_the_daemon_wires_layers_through_the_state(tmp_path):
    """No callback is patched into profiles or projects: they hold the state as their hooks."""
    from corral.daemon import Daemon
    from corral.paths import Paths
    mock.install()   # the fake drivers: building the daemon must not touch this test process's host
    try:
        d = Daemon(Paths(str(tmp_path)), mock=True)
    finally:
        mock.uninstall()
    s = d.state
    assert isinstance(s, State) and s.mock
    assert d.profiles.hooks is s and d.projects.hooks is s
    assert d.instances.d is s and d.networks.d is s and d.volumes.d is s
    assert d.pools is s.pools and d.project_setting == s.project_setting
    assert not hasattr(d.profiles, "apply_change") and not hasattr(d.projects, "check_limits")
    assert type(d.instances.driver).__name__ == "FakeDriver"
    assert d.networks.host.interfaces() == []


def test_mock_registries_install_and_uninstall():
    before = (dict(INSTANCE_DRIVERS), dict(storage.DRIVERS), dict(NETWORK_DRIVERS), dict(devices.DEVICES))
    mock.install()
    try:
        assert mock.active()
        assert {c.__name__ for c in INSTANCE_DRIVERS.values()} == {"FakeDriver"}
        assert set(storage.DRIVERS) == set(before[1]) >= {"dir", "btrfs"}
        for name, cls in storage.DRIVERS.items():
            if name == "fake":
                assert cls is before[1]["fake"]
                continue
            assert cls.name == name and cls.__mro__[1].__module__ == "corral.storage.drivers.fake"
        assert NETWORK_DRIVERS["bridge"].type == "bridge" and NETWORK_DRIVERS["macvlan"].type == "macvlan"
        assert devices.DEVICES["nic"].__module__ == "corral.instance.devices.fake"
        assert storage.driver_class("btrfs").name == "btrfs"
    finally:
        mock.uninstall()
    assert not mock.active()
    assert (dict(INSTANCE_DRIVERS), dict(storage.DRIVERS), dict(NETWORK_DRIVERS), dict(devices.DEVICES)) == before


def test_mock_requested_by_flag_or_environment(monkeypatch):
    monkeypatch.delenv("CORRAL_MOCK", raising=False)
    assert not mock.requested() and mock.requested(True)
    for v, want in (("1", True), ("true", True), ("0", False), ("", False)):
        monkeypatch.setenv("CORRAL_MOCK", v)
        assert mock.requested() is want
