"""pylxd's `virtual_machines` manager against corrald (issue 14 acceptance 6): create from the VM test
image, start, exec through the agent, files, stop, delete — pylxd as its users call it."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from helpers import initialised_corrald, unique
from vmlib import vm_image_files

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or not os.path.isdir("/usr/share/OVMF"),
                                reason="needs qemu-system-x86 and ovmf")


def test_pylxd_virtual_machines():
    pylxd = pytest.importorskip("pylxd")
    meta, rootfs = vm_image_files()
    with initialised_corrald() as d:
        d.lxc("image", "import", meta, rootfs, "--alias", "vmtest")
        client = pylxd.Client(endpoint=d.socket)
        name = unique("pyvm")
        vm = client.virtual_machines.create({"name": name, "source": {"type": "image", "alias": "vmtest"},
                                             "config": {"security.secureboot": "false", "limits.memory": "512MiB"}},
                                            wait=True)
        try:
            assert vm.type == "virtual-machine" and client.virtual_machines.exists(name)
            assert name in [i.name for i in client.virtual_machines.all()]
            assert client.virtual_machines.get(name).status == "Stopped"
            vm.start(wait=True)
            deadline = time.monotonic() + 180
            while True:   # the agent comes up some seconds after QEMU started
                try:
                    res = vm.execute(["sh", "-c", "echo hello; echo oops >&2; exit 2"])
                    break
                except Exception:  # noqa: BLE001 - "VM agent isn't currently running" until it is
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
            assert (res.exit_code, res.stdout, res.stderr) == (2, "hello\n", "oops\n")
            vm.files.put("/root/p.txt", b"pylxd data")
            assert vm.files.get("/root/p.txt") == b"pylxd data"
            vm.stop(wait=True)
            assert client.virtual_machines.get(name).status == "Stopped"
        finally:
            vm.delete(wait=True)
        assert not client.virtual_machines.exists(name)
