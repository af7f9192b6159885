"""Device handling through the API: host-path disk devices, masking, unimplemented types."""
import os

import pytest

from helpers import unique

pytestmark = pytest.mark.integration


def test_host_path_disk_device(host):
    # Unprivileged container roots must traverse every parent: keep the share under the 0711 state dir.
    shared = os.path.join(host.dir, unique("share"))
    os.mkdir(shared, 0o755)
    with open(os.path.join(shared, "hello"), "w") as f:
        f.write("from the host\n")
    c = unique("dk")
    host.lxc("launch", "busybox", c)
    try:
        host.lxc("config", "device", "add", c, "data", "disk", f"source={shared}", "path=/mnt/data",
                 "readonly=true")
        host.lxc("restart", c)
        assert host.lxc("exec", c, "--", "cat", "/mnt/data/hello").stdout == "from the host\n"
        r = host.lxc("exec", c, "--", "touch", "/mnt/data/x", check=False)
        assert r.returncode != 0
        bad = host.lxc("config", "device", "add", c, "bad", "disk", "path=/mnt/x", check=False)
        assert bad.returncode != 0 and "source" in bad.stderr
    finally:
        host.lxc("delete", "-f", c)


def test_unimplemented_device_type_is_refused_clearly(host):
    r = host.request("POST", "/1.0/profiles", {"name": unique("p"), "devices": {"g": {"type": "gpu"}}})
    assert r.status == 501 and r.json["error"] == "not implemented: gpu devices"
