"""The `fake` instance type: a container's semantics on the in-memory instance driver
(corral/instance/drivers/fake.py), with no host effects beyond the daemon's own directories: no
devices are started (no NIC, no mount, no kernel module), no links released. For tests and the
daemon's mock mode, which maps the `container` type onto it (`Instances(type_map=...)`)."""
from __future__ import annotations

from corral.instance.container import Container
from corral.instance.types import register


@register
class FakeInstance(Container):
    type_name = "fake"
    host_devices = False

    @classmethod
    def make_driver(cls, insts):
        from corral.instance.drivers.fake import FakeDriver
        return FakeDriver(insts.lxcpath, on_stopped=insts.on_stopped_thread, logpath=insts.d.paths.join("logs"))
