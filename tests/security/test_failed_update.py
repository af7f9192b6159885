"""Issue 9, finding 4: an update answered with 400 used to store the change anyway (PATCH limits.memory=1
on a running instance, core.https_address that cannot be bound...), so every later update failed until
a full PUT, or the daemon came up without HTTPS. Every update is now validate -> apply -> commit: a
failed apply leaves the stored object (the whole GET, ETag included) and the live state (cgroup
values, devices in the running container, listeners, bridge addresses) exactly as before."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile

import pytest

from helpers import free_port, unique


def _snapshot(host, path: str) -> tuple[dict, str]:
    r = host.get(path)
    assert r.status == 200, r.body
    return r.metadata, r.headers.get("ETag")


def _assert_refused(host, method: str, path: str, body: dict, *, contains: str = "") -> dict:
    """The update gets a 4xx with a message (an async PUT: a failed operation with one) and the
    object reads back exactly as before."""
    before = _snapshot(host, path)
    r = host.request(method, path, body)
    if r.status == 202:
        op = host.wait_op(r)
        assert op["status"] == "Failure" and 400 <= op["status_code"] < 500, op
        err = op["err"]
    else:
        assert 400 <= r.status < 500, (r.status, r.body)
        err = r.json["error"]
    assert err and contains in err, err
    assert _snapshot(host, path) == before
    return before[0]


def _pid(host, name: str) -> int:
    return host.get(f"/1.0/instances/{name}/state").metadata["pid"]


def _cgroup(pid: int, ctrl: str, key: str) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrl in ctrls.split(","):
                with open(f"/sys/fs/cgroup/{ctrl}{path}/{key}") as g:
                    return g.read().strip()
    raise AssertionError(f"no {ctrl} cgroup for pid {pid}")


def _limits(pid: int) -> dict:
    return {k: _cgroup(pid, k.split(".")[0], k) for k in
            ("memory.limit_in_bytes", "memory.soft_limit_in_bytes", "cpu.cfs_quota_us", "cpu.shares", "cpuset.cpus",
             "pids.max")}


def _links(pid: int) -> list[str]:
    out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "link"], capture_output=True, text=True,
                         check=True).stdout
    return sorted(link["ifname"] for link in json.loads(out))


def _mounted(pid: int, path: str) -> bool:
    with open(f"/proc/{pid}/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _bridge(host) -> str:
    return next(n["name"] for n in host.get("/1.0/networks?recursion=1").metadata if n["managed"])


@pytest.fixture
def running(host):
    name = unique("upd")
    host.lxc("launch", "busybox", name)
    try:
        yield name
    finally:
        host.lxc("delete", "-f", name, check=False)


# ---- server config ------------------------------------------------------------------------------

def test_server_bad_https_address_not_stored(fresh_host):
    d = fresh_host
    _assert_refused(d, "PATCH", "/1.0", {"config": {"core.https_address": "not:an:address:99999"}})
    _assert_refused(d, "PUT", "/1.0", {"config": {"core.https_address": "not:an:address:99999", "user.x": "1"}})
    d.stop()
    d.start()
    assert "core.https_address" not in d.get("/1.0").metadata["config"]
    assert d.get("/1.0").metadata["environment"]["addresses"] == []


def test_server_unbindable_https_address_keeps_old_listener(host):
    good, busy = free_port(), socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        assert host.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{good}"}}).status == 200
        _assert_refused(host, "PATCH", "/1.0",
                        {"config": {"core.https_address": f"127.0.0.1:{busy.getsockname()[1]}", "user.y": "2"}},
                        contains="Failed to listen")
        socket.create_connection(("127.0.0.1", good), timeout=5).close()   # still served where it was
    finally:
        busy.close()
        host.request("PATCH", "/1.0", {"config": {"core.https_address": ""}})


# ---- instances ----------------------------------------------------------------------------------

def test_instance_limits_the_kernel_refuses(host, running):
    pid = _pid(host, running)
    path = f"/1.0/instances/{running}"
    live = _limits(pid)
    _assert_refused(host, "PATCH", path, {"config": {"limits.memory": "1"}}, contains="Failed to apply limits")
    assert _limits(pid) == live
    # a partial apply (memory written, then the CPU quota refused) is undone
    _assert_refused(host, "PATCH", path, {"config": {"limits.memory": "128MiB", "limits.cpu.allowance": "0ms/100ms"}})
    assert _limits(pid) == live
    cur = host.get(path).metadata
    put = {k: cur[k] for k in ("architecture", "devices", "ephemeral", "profiles", "description")}
    _assert_refused(host, "PUT", path, {**put, "config": {**cur["config"], "limits.memory": "1"}})
    assert _limits(pid) == live
    # nothing got stuck: the next good update applies
    assert host.request("PATCH", path, {"config": {"limits.memory": "128MiB"}}).status == 200
    assert _cgroup(pid, "memory", "memory.limit_in_bytes") == str(128 * 1024 * 1024)


def test_instance_device_hotplug_failures(host, running):
    pid = _pid(host, running)
    path = f"/1.0/instances/{running}"
    links = _links(pid)
    _assert_refused(host, "PATCH", path, {"devices": {"n9": {"type": "nic", "network": "nonexistent0", "name": "eth9"}}},
                    contains="Network not found")
    _assert_refused(host, "PATCH", path, {"devices": {"d9": {"type": "disk", "source": "/nonexistent/src",
                                                             "path": "/mnt/x"}}}, contains="doesn't exist")
    src = tempfile.mkdtemp(prefix="corral-upd-")
    try:
        # a good disk is plugged first, then a NIC the container refuses: the disk is unplugged again
        _assert_refused(host, "PATCH", path, {"devices": {
            "d1": {"type": "disk", "source": src, "path": "/mnt/good"},
            "n1": {"type": "nic", "network": _bridge(host), "name": "eth0"}}}, contains="already exists")
        assert not _mounted(pid, "/mnt/good")
        assert _links(pid) == links
        # a PUT removing a plugged disk and adding a refused NIC leaves the disk where it was
        assert host.request("PATCH", path, {"devices": {"d1": {"type": "disk", "source": src,
                                                               "path": "/mnt/good"}}}).status == 200
        assert _mounted(pid, "/mnt/good")
        cur = host.get(path).metadata
        put = {k: cur[k] for k in ("architecture", "config", "ephemeral", "profiles", "description")}
        devices = {k: v for k, v in cur["devices"].items() if k != "d1"}
        devices["n1"] = {"type": "nic", "network": _bridge(host), "name": "eth0"}
        _assert_refused(host, "PUT", path, {**put, "devices": devices}, contains="already exists")
        assert _mounted(pid, "/mnt/good")
        assert _links(pid) == links
    finally:
        host.lxc("config", "device", "remove", running, "d1", check=False)
        os.rmdir(src)


def test_instance_rename_failures(host, running):
    other = unique("upd")
    host.lxc("init", "busybox", other)
    try:
        _assert_refused(host, "POST", f"/1.0/instances/{running}", {"name": unique("upd")}, contains="running")
        host.lxc("stop", "-f", running)
        before = _snapshot(host, f"/1.0/instances/{running}")
        r = host.request("POST", f"/1.0/instances/{running}", {"name": other})
        assert r.status == 409, r.body
        assert _snapshot(host, f"/1.0/instances/{running}") == before
        assert host.get(f"/1.0/instances/{other}").status == 200
    finally:
        host.lxc("delete", "-f", other, check=False)


# ---- profiles -----------------------------------------------------------------------------------

def test_profile_change_refused_by_one_instance_rolls_back_all(host):
    """Two running instances use the profile; the change (a CPU share and a NIC named eth1) applies to
    the first and is refused by the second (which has its own eth1): the first is put back, the
    profile is not changed."""
    prof, first, second = unique("pr"), "pa" + unique(""), "pb" + unique("")
    bridge = _bridge(host)
    host.lxc("profile", "create", prof)
    try:
        for n in (first, second):
            host.lxc("launch", "busybox", n, "-p", "default", "-p", prof)
        host.lxc("config", "device", "add", second, "own1", "nic", f"network={bridge}", "name=eth1")
        pids = {n: _pid(host, n) for n in (first, second)}
        live = {n: (_limits(p), _links(p)) for n, p in pids.items()}
        insts = {n: _snapshot(host, f"/1.0/instances/{n}") for n in (first, second)}
        _assert_refused(host, "PATCH", f"/1.0/profiles/{prof}", {
            "config": {"limits.cpu.allowance": "20%"},
            "devices": {"p1": {"type": "nic", "network": bridge, "name": "eth1"}}}, contains=second)
        assert {n: (_limits(p), _links(p)) for n, p in pids.items()} == live
        assert {n: _snapshot(host, f"/1.0/instances/{n}") for n in (first, second)} == insts
        # without the conflict the same change applies live to both
        host.lxc("config", "device", "remove", second, "own1")
        assert host.request("PATCH", f"/1.0/profiles/{prof}", {"config": {"limits.cpu.allowance": "20%"}}).status == 200
        assert {_cgroup(p, "cpu", "cpu.shares") for p in pids.values()} == {str(20 * 1024 // 100)}
    finally:
        host.lxc("delete", "-f", first, second, check=False)
        host.lxc("profile", "delete", prof, check=False)


# ---- networks, storage, projects ----------------------------------------------------------------

def test_network_changes_that_cannot_be_applied(host):
    name = unique("ub")[:12]
    other = next(n for n in host.get("/1.0/networks?recursion=1").metadata if n["managed"])
    r = host.request("POST", "/1.0/networks", {"name": name, "config": {"ipv4.address": "none",
                                                                          "ipv6.address": "none"}})
    assert r.status == 201, r.body
    try:
        link = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", name], capture_output=True,
                                         text=True, check=True).stdout)
        path = f"/1.0/networks/{name}"
        _assert_refused(host, "PATCH", path, {"config": {"ipv4.address": other["config"]["ipv4.address"]}},
                        contains="overlaps")
        # the kernel refuses a multicast MAC: a clear 400, the bridge keeps its address and MAC
        _assert_refused(host, "PATCH", path, {"config": {"bridge.hwaddr": "ff:ff:ff:ff:ff:ff", "user.z": "1"}},
                        contains="Failed to apply")
        after = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", name], capture_output=True,
                                          text=True, check=True).stdout)
        assert [(a["address"], a["addr_info"]) for a in after] == [(a["address"], a["addr_info"]) for a in link]
    finally:
        host.request("DELETE", f"/1.0/networks/{name}")


def _mount_options(path: str) -> str:
    with open("/proc/self/mounts") as f:
        return next(line.split()[3] for line in f if line.split()[1] == path)


def test_btrfs_pool_partial_apply_undone(host):
    """Two driver keys: the mount options apply (a remount), then the shrink is refused; the pool is
    remounted with its old options and nothing is stored."""
    name = unique("bp")
    host.lxc("storage", "create", name, "btrfs", "size=256MiB")
    try:
        source = host.get(f"/1.0/storage-pools/{name}").metadata
        mnt = os.path.join(host.dir, "storage-pools", name)
        opts = _mount_options(mnt)
        assert "compress=zstd" not in opts
        _assert_refused(host, "PATCH", f"/1.0/storage-pools/{name}",
                        {"config": {"btrfs.mount_options": "user_subvol_rm_allowed,compress=zstd:3", "size": "128MiB",
                                    "user.a": "1"}}, contains="shrunk")
        assert _mount_options(mnt) == opts
        assert host.get(f"/1.0/storage-pools/{name}").metadata == source
    finally:
        host.lxc("storage", "delete", name, check=False)


def test_storage_pool_and_volume_changes_refused(host):
    _assert_refused(host, "PATCH", "/1.0/storage-pools/default", {"config": {"source": "/tmp/elsewhere",
                                                                             "user.a": "1"}})
    vol = unique("v")
    assert host.request("POST", "/1.0/storage-pools/default/volumes/custom", {"name": vol}).status in (200, 201)
    try:
        _assert_refused(host, "PATCH", f"/1.0/storage-pools/default/volumes/custom/{vol}",
                        {"config": {"size": "1MiB", "user.a": "1"}})
        _assert_refused(host, "PUT", f"/1.0/storage-pools/default/volumes/custom/{vol}",
                        {"config": {"security.shifted": "true", "security.unmapped": "true"}})
    finally:
        host.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{vol}")


def test_project_changes_refused(host):
    name = unique("pj")
    r = host.request("POST", "/1.0/projects", {"name": name, "config": {"features.images": "false"}})
    assert r.status == 201, r.body
    inst = unique("pj")
    try:
        _assert_refused(host, "PATCH", f"/1.0/projects/{name}", {"config": {"limits.bogus": "1", "user.a": "1"}})
        host.lxc("init", "busybox", inst, "--project", name, "-s", "default")
        _assert_refused(host, "PATCH", f"/1.0/projects/{name}", {"config": {"features.images": "true", "user.a": "1"}},
                        contains="empty projects")
    finally:
        host.lxc("delete", "-f", inst, "--project", name, check=False)
        host.request("DELETE", f"/1.0/projects/{name}")
