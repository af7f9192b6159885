"""Mock mode (`corrald --mock`, or CORRAL_MOCK=1): the whole daemon (dqlite, API, operations,
events, profiles, projects, images) on the fake instance, storage, network and device drivers, so it
runs as an ordinary user and touches nothing on the host outside $CORRAL_DIR: no liblxc, no mount,
no chown, no netlink, nft or dnsmasq, no cgroup.

The mode is chosen once per process, before the daemon is built: `install()` points each driver
registry's names at their fakes (`lxc` -> the in-memory instance driver; the `dir` and `btrfs`
pool drivers -> plain directory copies under the pool path; `bridge` and `macvlan` networks ->
the fake network driver; `disk`, `nic`, `proxy` devices -> their host-free versions). Everything
above the registries runs unchanged. See docs/mock.md.
"""
from __future__ import annotations

import os

from corral import storage
from corral.config.values import is_true
from corral.instance import drivers as instance_drivers
from corral.instance import devices
from corral.instance.devices.fake import FAKE_DEVICES
from corral.instance.drivers.fake import FakeDriver as FakeInstanceDriver
from corral.network import DRIVERS as NETWORK_DRIVERS
from corral.network.drivers.fake import MOCK_DRIVERS as FAKE_NETWORKS
from corral.storage.drivers.fake import FakeDriver as FakeStorageDriver

ENV = "CORRAL_MOCK"
_installed: dict[str, dict] | None = None


def requested(flag: bool = False) -> bool:
    """--mock, or CORRAL_MOCK set to 1/true/yes."""
    return flag or is_true(os.environ.get(ENV))


def _fake_pool_driver(real: type) -> type:
    """The fake storage driver under a real driver's name (so its pool keys and scope apply)."""
    return type(f"Mock{real.__name__}", (FakeStorageDriver,), {
        "name": real.name, "optimized_images": False,
        "__doc__": f"Mock mode's {real.name!r} pools: plain directories, no host tools, no quota."})


def mock_registries() -> dict[str, dict]:
    """What install() puts in each registry, by registry."""
    return {
        "instance": {name: FakeInstanceDriver for name in instance_drivers.DRIVERS},
        "storage": {name: cls if issubclass(cls, FakeStorageDriver) else _fake_pool_driver(cls)
                    for name, cls in storage.DRIVERS.items()},
        "network": dict(FAKE_NETWORKS),
        "devices": dict(FAKE_DEVICES),
    }


def _targets() -> dict[str, dict]:
    return {"instance": instance_drivers.DRIVERS, "storage": storage.DRIVERS, "network": NETWORK_DRIVERS,
            "devices": devices.DEVICES}


def install() -> dict[str, dict]:
    """Switch this process to mock mode (idempotent); returns the registries now in use."""
    global _installed
    if _installed is None:
        wanted = mock_registries()
        saved = {}
        for kind, registry in _targets().items():
            saved[kind] = dict(registry)
            registry.update(wanted[kind])
        _installed = saved
    return _targets()


def uninstall() -> None:
    """Back to the host drivers (for tests that switch modes inside one process)."""
    global _installed
    if _installed is None:
        return
    for kind, registry in _targets().items():
        registry.clear()
        registry.update(_installed[kind])
    _installed = None


def active() -> bool:
    return _installed is not None
