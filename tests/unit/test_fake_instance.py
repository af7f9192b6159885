"""The `fake` instance type's lifecycle on the in-memory driver, around a stand-in manager (no
daemon, no root, no host effects: a NIC on a network that does not exist is never started)."""
import asyncio
import contextlib
import os

import pytest

pytest.importorskip("corral.instance.drivers.fake")   # the mock mode's driver (corral/instance/drivers/fake.py)

from corral.instance.model import Loaded  # noqa: E402
from corral.instance.types import instance_class  # noqa: E402
from corral.storage.drivers.fake import FakeDriver  # noqa: E402
from corral.storage.pool import Pool  # noqa: E402


class _Pools:
    """One pool "p" on the fake storage driver (corral/storage/drivers/fake.py)."""

    def __init__(self, root):
        self.p = Pool("p", FakeDriver("p", os.path.join(root, "pool"), {}))
        self.p.driver.create_pool()

    def pool(self, name):
        assert name == "p"
        return self.p


class _Daemon:
    def __init__(self, root):
        self.root = root
        self.pools = _Pools(root)
        self.paths = type("Paths", (), {"join": lambda _self, *a: os.path.join(root, *a)})()

    def instance_mounts(self, inst):
        return []


class _Insts:
    """What an instance object asks of its manager."""

    def __init__(self, root):
        self.d = _Daemon(root)
        self.lxcpath = os.path.join(root, "containers")
        self.events_seen: list[str] = []
        self.events = type("Events", (), {"lifecycle": lambda _s, action, *a, **k: self.events_seen.append(action)})()
        self.volatile: dict = {}
        self._drivers: dict = {}

    def driver_for(self, cls):
        return self._drivers.setdefault(cls, cls.make_driver(self))

    def instance(self, loaded):
        return instance_class("fake")(self, loaded)

    async def load(self, project, name):
        return Loaded(dict(REC), {}, dict(REC["devices"]))

    def on_stopped_thread(self, dname):
        pass

    def driver_name(self, project, name):
        return name

    def log_dir(self, project, name):
        return os.path.join(self.d.root, "logs", name)

    volume_name = staticmethod(lambda project, name: name)

    async def set_volatile(self, project, name, changes, last_used=None):
        self.volatile.update(changes)

    @contextlib.contextmanager
    def stopping_by_api(self, dname):
        yield


REC = {"id": 1, "name": "c1", "project": "default", "type": "container", "architecture": "x86_64", "config": {},
       "devices": {"eth0": {"type": "nic", "network": "no-such-network"},
                   "root": {"type": "disk", "path": "/", "pool": "p"}},
       "ephemeral": False, "profiles": [], "stateful": False, "description": "", "created_at": "t",
       "last_used_at": "t"}


def test_fake_lifecycle(tmp_path):
    async def run():
        insts = _Insts(str(tmp_path))
        inst = instance_class("fake")(insts, Loaded(dict(REC), {}, dict(REC["devices"])))
        await asyncio.to_thread(insts.d.pools.p.create_instance_empty, "c1")
        await asyncio.to_thread(inst.driver.create, inst.spec())
        assert inst.status() == "Stopped"
        await inst.start()
        assert inst.status() == "Running" and insts.volatile["volatile.last_state.power"] == "RUNNING"
        with pytest.raises(Exception, match="already running"):
            await inst.start()
        await inst.freeze()
        assert inst.status() == "Frozen"
        await inst.unfreeze()
        assert (await inst.state())["status"] == "Running"
        assert (await asyncio.to_thread(inst.exec, ["true"], {})).wait() == 0
        await asyncio.to_thread(inst.file_put, "/hello", "file", b"hi")
        entry = inst.file_get("/hello")
        with entry.file:
            assert entry.file.read() == b"hi"
        await inst.restart(force=True, timeout=0)
        assert inst.status() == "Running"
        await inst.stop(force=False, timeout=5)
        assert inst.status() == "Stopped" and insts.volatile["volatile.last_state.power"] == "STOPPED"
        assert insts.events_seen == ["instance-started", "instance-paused", "instance-resumed", "instance-started",
                                     "instance-restarted", "instance-stopped"]
    asyncio.run(run())
