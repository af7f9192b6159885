"""Instances on the mock mode: the real API, database, operations and events over the fake drivers,
with corrald running as an ordinary user (see tests/mockd.py)."""
import json
import os

import pytest

from helpers import unique


def op_ok(d, resp) -> dict:
    assert resp.status == 202, resp.body
    meta = d.wait_op(resp, timeout=30)
    assert meta["status"] == "Success", meta
    return meta


def create(d, name: str, **extra) -> None:
    body = {"name": name, "source": {"type": "image", "alias": "busybox"}, **extra}
    op_ok(d, d.request("POST", "/1.0/instances", body))


def state(d, name: str) -> str:
    return d.get(f"/1.0/instances/{name}/state").metadata["status"]


def test_daemon_runs_unprivileged_in_mock_mode(mock_host):
    d = mock_host
    env = d.get("/1.0").metadata["environment"]
    assert env["storage"] == "dir"
    if d.unprivileged:
        pid = d.proc.pid
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        assert status["Uid"].split()[:2] == ["65534", "65534"]
        assert status["CapEff"].strip() == "0000000000000000"
        assert os.stat(os.path.join(d.dir, "database")).st_uid == 65534


def test_lifecycle_through_the_api(mock_host):
    d = mock_host
    name = unique("m")
    create(d, name)
    inst = d.get(f"/1.0/instances/{name}").metadata
    assert inst["status"] == "Stopped" and inst["type"] == "container"
    assert inst["expanded_devices"]["root"] == {"path": "/", "pool": "default", "type": "disk"}
    # the rootfs really is the image's, copied by the (fake) pool driver
    rootfs = os.path.join(d.dir, "storage-pools", "default", "containers", name, "rootfs")
    assert os.path.isfile(os.path.join(rootfs, "sbin", "init"))

    op_ok(d, d.request("PUT", f"/1.0/instances/{name}/state", {"action": "start"}))
    assert state(d, name) == "Running"
    r = d.request("PUT", f"/1.0/instances/{name}/state", {"action": "start"})
    meta = d.wait_op(r, timeout=30)
    assert meta["status"] == "Failure" and "already running" in meta["err"]

    op_ok(d, d.request("PUT", f"/1.0/instances/{name}/state", {"action": "freeze"}))
    assert state(d, name) == "Frozen"
    op_ok(d, d.request("PUT", f"/1.0/instances/{name}/state", {"action": "unfreeze"}))
    op_ok(d, d.request("PUT", f"/1.0/instances/{name}/state", {"action": "restart"}))
    assert state(d, name) == "Running"

    # exec runs nothing and ends cleanly
    meta = op_ok(d, d.request("POST", f"/1.0/instances/{name}/exec",
                              {"command": ["true"], "wait-for-websocket": False, "interactive": False,
                               "record-output": True}))
    assert meta["metadata"]["return"] == 0

    r = d.request("DELETE", f"/1.0/instances/{name}")
    assert r.status == 400 and "running" in r.json["error"]
    op_ok(d, d.request("PUT", f"/1.0/instances/{name}/state", {"action": "stop", "force": True}))
    assert state(d, name) == "Stopped"
    op_ok(d, d.request("DELETE", f"/1.0/instances/{name}"))
    assert d.get(f"/1.0/instances/{name}").status == 404
    assert not os.path.exists(os.path.dirname(rootfs))


def test_snapshot_restore_copy_rename_with_lxc(mock_host):
    d = mock_host
    a, b, c = unique("a"), unique("b"), unique("c")
    d.lxc("launch", "busybox", a)
    rootfs = os.path.join(d.dir, "storage-pools", "default", "containers", a, "rootfs")
    marker = os.path.join(rootfs, "marker")
    with open(marker, "w") as f:
        f.write("one")
    d.lxc("snapshot", a, "s1")
    with open(marker, "w") as f:
        f.write("two")
    snaps = d.get(f"/1.0/instances/{a}/snapshots").metadata
    assert snaps == [f"/1.0/instances/{a}/snapshots/s1"]

    res = d.lxc("restore", a, "s1", check=False)   # running: LXD restores it, stopping and starting
    assert res.returncode == 0, res.stderr
    with open(marker) as f:
        assert f.read() == "one"
    assert state(d, a) == "Running"

    d.lxc("stop", a, "--force")
    d.lxc("copy", a, b)
    d.lxc("move", b, c)
    listed = json.loads(d.lxc("list", "--format", "json").stdout)
    names = {i["name"]: i for i in listed}
    assert c in names and b not in names and a in names
    assert names[c]["snapshots"] and names[c]["snapshots"][0]["name"] == "s1"
    with open(os.path.join(d.dir, "storage-pools", "default", "containers", c, "rootfs", "marker")) as f:
        assert f.read() == "one"
    d.lxc("start", c)
    assert state(d, c) == "Running"
    d.lxc("delete", "--force", a, c)
    assert d.get(f"/1.0/instances/{a}").status == 404 and d.get(f"/1.0/instances/{c}").status == 404


def test_devices_are_validated_and_checked_at_start(mock_host):
    d = mock_host
    name = unique("dv")
    create(d, name)
    # a disk whose source is missing: the real device's error, nothing started
    r = d.request("PATCH", f"/1.0/instances/{name}",
                  {"devices": {"data": {"type": "disk", "source": "/nonexistent-" + name, "path": "/mnt"}}})
    assert r.status == 200, r.body
    r = d.request("PUT", f"/1.0/instances/{name}/state", {"action": "start"})
    meta = d.wait_op(r, timeout=30)
    assert meta["status"] == "Failure" and "doesn't exist" in meta["err"], meta
    assert state(d, name) == "Stopped"
    # a NIC on a network that does not exist is refused when the device is added
    r = d.request("PATCH", f"/1.0/instances/{name}",
                  {"devices": {"data": {"type": "none"}, "eth9": {"type": "nic", "network": "nosuchnet"}}})
    assert r.status == 400, r.body
    # a NIC on a (fake) managed network: started, its MAC recorded, no host interface made
    net = unique("n")[:12]
    assert d.request("POST", "/1.0/networks", {"name": net, "config": {}}).status == 201
    r = d.request("PATCH", f"/1.0/instances/{name}",
                  {"devices": {"data": {"type": "none"}, "eth0": {"type": "nic", "network": net, "name": "eth0"}}})
    assert r.status == 200, r.body
    op_ok(d, d.request("PUT", f"/1.0/instances/{name}/state", {"action": "start"}))
    cfg = d.get(f"/1.0/instances/{name}").metadata["config"]
    assert cfg.get("volatile.eth0.hwaddr", "").startswith("00:16:3e")
    assert "volatile.eth0.host_name" not in cfg
    assert not os.path.exists(f"/sys/class/net/{net}")
    assert d.get(f"/1.0/networks/{net}").metadata["used_by"] == [f"/1.0/instances/{name}"]
    d.lxc("delete", "--force", name)
    assert d.request("DELETE", f"/1.0/networks/{net}").status == 200


@pytest.mark.parametrize("driver", ["dir", "btrfs"])
def test_pools_of_every_driver_name(mock_host, driver):
    d = mock_host
    pool = unique("p")
    d.lxc("storage", "create", pool, driver)
    p = d.get(f"/1.0/storage-pools/{pool}").metadata
    assert p["driver"] == driver and p["status"] == "Created"
    name = unique("i")
    d.lxc("launch", "busybox", name, "--storage", pool)
    assert d.get(f"/1.0/instances/{name}").metadata["expanded_devices"]["root"]["pool"] == pool
    assert os.path.isdir(os.path.join(d.dir, "storage-pools", pool, "containers", name, "rootfs"))
    r = d.request("DELETE", f"/1.0/storage-pools/{pool}")
    assert r.status == 400   # in use
    d.lxc("delete", "--force", name)
    d.lxc("storage", "delete", pool)
    assert d.get(f"/1.0/storage-pools/{pool}").status == 404


def test_exec_files_and_live_config_with_lxc(mock_host, tmp_path):
    d = mock_host
    name = unique("x")
    d.lxc("launch", "busybox", name)
    res = d.lxc("exec", name, "--", "sh", "-c", "echo out; exit 7", check=False)
    assert (res.returncode, res.stdout) == (0, "")   # the fake runs nothing and exits cleanly
    src = tmp_path / "hello"
    src.write_text("hello\n")
    # an unprivileged daemon can only give files its own owner (files.py chowns as asked)
    owner = ["--uid", "65534", "--gid", "65534"] if d.unprivileged else []
    d.lxc("file", "push", *owner, str(src), f"{name}/root/hello")
    rootfs = os.path.join(d.dir, "storage-pools", "default", "containers", name, "rootfs")
    with open(os.path.join(rootfs, "root", "hello")) as f:
        assert f.read() == "hello\n"
    d.lxc("file", "pull", f"{name}/etc/hostname", str(tmp_path / "hostname"))
    assert (tmp_path / "hostname").read_text().strip() == name   # the start rendered the templates
    d.lxc("config", "set", name, "limits.memory", "96MiB")   # a live change on the running instance
    assert d.get(f"/1.0/instances/{name}").metadata["config"]["limits.memory"] == "96MiB"
    res = d.lxc("config", "set", name, "limits.memory", "much", check=False)
    assert res.returncode != 0
    assert d.get(f"/1.0/instances/{name}").metadata["config"]["limits.memory"] == "96MiB"
    d.lxc("delete", "--force", name)
