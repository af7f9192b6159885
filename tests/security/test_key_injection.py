"""Issue 9, finding 5: client data written into generated files (liblxc config, dnsmasq hosts).

A newline in a config key used to become a new liblxc line (`lxc.hook.pre-start`, run as host root
at start). Key names now follow one character set in every scope; values that reach a generated
file are validated or escaped; an instance whose stored record cannot be loaded still lists, and
deletes without leaving its host veth behind.
"""
import json
import os
import subprocess
import uuid

import pytest

from helpers import unique, wait_for

HOOK_KEY = "environment.A=1\nlxc.hook.pre-start = /bin/sh -c 'id > {marker}'\nlxc.environment = C"


def _marker() -> str:
    return f"/tmp/corral-sec5-{uuid.uuid4().hex}"


def _lxc_config(d, name: str) -> str:
    with open(os.path.join(d.dir, "logs", name, "lxc.conf")) as f:   # LXD: logs/<name>/lxc.conf
        return f.read()


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


@pytest.fixture
def inst(host):
    name = unique("inj")
    host.lxc("init", "busybox", name)
    yield name
    host.lxc("delete", "-f", name, check=False)


def test_newline_in_config_key_is_refused_and_never_runs(host, inst):
    marker = _marker()
    key = HOOK_KEY.format(marker=marker)
    before = host.get(f"/1.0/instances/{inst}").metadata["config"]
    r = host.request("PATCH", f"/1.0/instances/{inst}", {"config": {key: "x"}})
    assert r.status == 400, r.body
    assert "Invalid configuration key" in r.json["error"]
    assert host.get(f"/1.0/instances/{inst}").metadata["config"] == before
    try:
        host.lxc("start", inst)
        assert "lxc.hook" not in _lxc_config(host, inst)
        assert not os.path.exists(marker)
    finally:
        if os.path.exists(marker):
            os.unlink(marker)


def test_newline_in_environment_value_stays_on_its_line(host, inst):
    marker = _marker()
    value = f"1\nlxc.hook.pre-start = /bin/sh -c 'id > {marker}'\r\nlxc.environment = C=2"
    assert host.request("PATCH", f"/1.0/instances/{inst}", {"config": {"environment.GOOD_1": value}}).status == 200
    try:
        host.lxc("start", inst)
        conf = _lxc_config(host, inst)
        env_lines = [ln for ln in conf.splitlines() if ln.startswith("lxc.environment = GOOD_1=")]
        assert len(env_lines) == 1 and "lxc.hook" not in conf.replace(env_lines[0], "")
        assert not any(ln.startswith("lxc.hook") for ln in conf.splitlines())
        assert not os.path.exists(marker)
        environ = host.lxc("exec", inst, "--", "cat", "/proc/1/environ").stdout.split("\0")
        assert [e for e in environ if e.startswith("GOOD_1=")] == [
            f"GOOD_1=1 lxc.hook.pre-start = /bin/sh -c 'id > {marker}' lxc.environment = C=2"]
    finally:
        if os.path.exists(marker):
            os.unlink(marker)


BAD_KEYS = ["user.a\nb", "user.a b", "user.a=b", "environment.A=1", "user.\u00e9", "user.a\x00", "user.a/b",
            "environment.A\rB", "user." + "x" * 300]


def _scopes(host, tmp):
    """(description, method, path, body builder) for every place a client names a key."""
    pool, net, vol, proj = tmp["pool"], tmp["net"], tmp["vol"], tmp["proj"]
    return [
        ("instance config", "PATCH", f"/1.0/instances/{tmp['inst']}", lambda k: {"config": {k: "x"}}),
        ("instance device option", "PATCH", f"/1.0/instances/{tmp['inst']}",
         lambda k: {"devices": {"d1": {"type": "none", k: "x"}}}),
        ("profile config", "PATCH", f"/1.0/profiles/{tmp['profile']}", lambda k: {"config": {k: "x"}}),
        ("profile device option", "PATCH", f"/1.0/profiles/{tmp['profile']}",
         lambda k: {"devices": {"d1": {"type": "none", k: "x"}}}),
        ("server config", "PATCH", "/1.0", lambda k: {"config": {k: "x"}}),
        ("network config", "PATCH", f"/1.0/networks/{net}", lambda k: {"config": {k: "x"}}),
        ("pool config", "PATCH", f"/1.0/storage-pools/{pool}", lambda k: {"config": {k: "x"}}),
        ("volume config", "PATCH", f"/1.0/storage-pools/{pool}/volumes/custom/{vol}", lambda k: {"config": {k: "x"}}),
        ("new volume config", "POST", f"/1.0/storage-pools/{pool}/volumes/custom",
         lambda k: {"name": unique("v"), "config": {k: "x"}}),
        ("project config", "PATCH", f"/1.0/projects/{proj}", lambda k: {"config": {k: "x"}}),
        ("new project config", "POST", "/1.0/projects", lambda k: {"name": unique("p"), "config": {k: "x"}}),
        ("image property", "PATCH", f"/1.0/images/{tmp['image']}", lambda k: {"properties": {k: "x"}}),
        ("instance metadata property", "PUT", f"/1.0/instances/{tmp['inst']}/metadata",
         lambda k: {"architecture": "x86_64", "creation_date": 1700000000, "properties": {k: "x"}}),
    ]


@pytest.fixture(scope="module")
def scope_objects(host):
    tmp = {"inst": unique("sc"), "profile": unique("pr"), "vol": unique("vol"), "proj": unique("pj"),
           "pool": "default", "net": host.get("/1.0/profiles/default").metadata["devices"]["eth0"]["network"],
           "image": host.get("/1.0/images/aliases/busybox").metadata["target"]}
    host.lxc("init", "busybox", tmp["inst"])
    host.lxc("profile", "create", tmp["profile"])
    host.lxc("storage", "volume", "create", "default", tmp["vol"])
    host.lxc("project", "create", tmp["proj"])
    yield tmp
    host.lxc("delete", "-f", tmp["inst"], check=False)
    host.lxc("profile", "delete", tmp["profile"], check=False)
    host.lxc("storage", "volume", "delete", "default", tmp["vol"], check=False)
    host.lxc("project", "delete", tmp["proj"], check=False)


def _snapshot(host, tmp):
    return json.dumps([host.get(p).metadata for p in (
        f"/1.0/instances/{tmp['inst']}", f"/1.0/profiles/{tmp['profile']}", "/1.0", f"/1.0/networks/{tmp['net']}",
        "/1.0/storage-pools/default", f"/1.0/storage-pools/default/volumes/custom/{tmp['vol']}",
        f"/1.0/projects/{tmp['proj']}", f"/1.0/images/{tmp['image']}", "/1.0/projects",
        "/1.0/storage-pools/default/volumes")], sort_keys=True, default=str)


def test_key_names_refused_in_every_scope(host, scope_objects):
    tmp = scope_objects
    before = _snapshot(host, tmp)
    for what, method, path, body in _scopes(host, tmp):
        for key in BAD_KEYS:
            r = host.request(method, path, body(key))
            assert r.status == 400, (what, key, r.status, r.body)
            assert "Invalid" in r.json["error"], (what, key, r.body)
    assert _snapshot(host, tmp) == before
    # The rule lets real keys through (user keys with dots, dashes, underscores, colons).
    good = "user.good-key_1.a:b"
    try:
        for what, method, path, body in _scopes(host, tmp):
            if method == "PATCH" and "device" not in what:
                r = host.request(method, path, body(good))
                assert r.status == 200, (what, r.body)
    finally:
        host.request("PATCH", "/1.0", {"config": {good: ""}})


@pytest.mark.parametrize("name", ["a\nb", "a b", ".hidden", "a/b", "x" * 64, "é", ""])
def test_device_names_refused(host, inst, name):
    r = host.request("PATCH", f"/1.0/instances/{inst}", {"devices": {name: {"type": "none"}}})
    assert r.status == 400, r.body
    r = host.request("POST", "/1.0/profiles", {"name": unique("pd"), "devices": {name: {"type": "none"}}})
    assert r.status == 400, r.body


def test_device_names_lxd_allows_are_accepted(host, inst):
    for name in ("eth-1", "my_disk.2", "a:b", "x" * 63):
        assert host.request("PATCH", f"/1.0/instances/{inst}", {"devices": {name: {"type": "none"}}}).status == 200


def test_device_values_with_control_characters_refused(host, inst):
    marker = _marker()
    path = f"/mnt\nlxc.hook.pre-start = /bin/sh -c 'id > {marker}'"
    r = host.request("PATCH", f"/1.0/instances/{inst}",
                     {"devices": {"d1": {"type": "disk", "source": "/tmp", "path": path}}})
    assert r.status == 400 and "control characters" in r.json["error"], r.body
    r = host.request("PATCH", f"/1.0/instances/{inst}",
                     {"devices": {"eth9": {"type": "nic", "nictype": "p2p", "hwaddr": "00:16:3e:00:00:01\nx"}}})
    assert r.status == 400, r.body


def test_mount_paths_are_escaped(host, inst):
    # Under the daemon's directory (0711): an unprivileged container's mounts need to traverse it.
    src = os.path.join(host.dir, unique("mnt"), "a dir with\\odd")
    os.makedirs(src)
    assert host.request("PATCH", f"/1.0/instances/{inst}", {"devices": {
        "d1": {"type": "disk", "source": str(src), "path": "/mnt/x y", "shift": "false"}}}).status == 200
    host.lxc("start", inst)
    entries = [ln for ln in _lxc_config(host, inst).splitlines() if "mnt/x" in ln]
    assert len(entries) == 1, entries
    assert "a\\040dir\\040with\\134odd mnt/x\\040y none " in entries[0], entries
    assert host.lxc("exec", inst, "--", "ls", "-d", "/mnt/x y").returncode == 0


@pytest.mark.parametrize("value", ["volatile.eth0.hwaddr", "volatile.eth0.host_name"])
def test_volatile_values_that_reach_files_are_validated(host, inst, value):
    r = host.request("PATCH", f"/1.0/instances/{inst}", {"config": {value: "vethabc\nlxc.hook.pre-start = x"}})
    assert r.status == 400, r.body


def test_raw_lxc_lines_must_be_liblxc_settings(host, inst):
    for raw in ("not a setting", "lxc.apparmor.profile = unconfined\nrm -rf /", "lxc.log.file = /tmp/x",
                "lxc.a = b\rlxc.c = d"):
        r = host.request("PATCH", f"/1.0/instances/{inst}", {"config": {"raw.lxc": raw}})
        assert r.status == 400, (raw, r.body)
    ok = "# a comment\n\nlxc.environment = RAW_OK=1\n  lxc.mount.auto = proc:rw  \n"
    assert host.request("PATCH", f"/1.0/instances/{inst}", {"config": {"raw.lxc": ok}}).status == 200


def test_dhcp_host_entries_are_one_line(host, inst):
    """The dnsmasq hosts file line of a nic: MAC, address and hostname, nothing else."""
    host.lxc("start", inst)
    net = host.get("/1.0/profiles/default").metadata["devices"]["eth0"]["network"]
    hosts = os.path.join(host.dir, "networks", net, "dnsmasq.hosts")
    entries = [open(os.path.join(hosts, f)).read() for f in os.listdir(hosts) if f.startswith(inst + ".")]
    assert len(entries) == 1 and entries[0].count("\n") == 1
    mac, name = entries[0].strip().split(",")
    assert name == inst and mac == host.get(f"/1.0/instances/{inst}").metadata["config"]["volatile.eth0.hwaddr"]


# ---- records that cannot be loaded ---------------------------------------------------------

_OF = "FROM instances WHERE name = '{name}' AND project_id = 1"
BROKEN = {   # rows written by hand into LXD's tables (corrald sql global)
    "config value NULL": "INSERT INTO instances_config (instance_id, key, value) SELECT id, 'user.broken', NULL " + _OF,
    "config with a bad key": "INSERT INTO instances_config (instance_id, key, value) SELECT id, "
                             "'environment.A=1\nlxc.hook.pre-start = /bin/true', 'x' " + _OF,
    "device of no known type": "INSERT INTO instances_devices (instance_id, name, type) SELECT id, 'eth0', 99 " + _OF,
    "device without a type": "INSERT INTO instances_devices (instance_id, name, type) SELECT id, 'x', 0 " + _OF,
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_record_lists_and_deletes_without_leaking_veth(host, case):
    name = unique("brk")
    host.lxc("launch", "busybox", name)
    try:
        cfg = host.get(f"/1.0/instances/{name}").metadata["config"]
        veth = cfg["volatile.eth0.host_name"]
        peer = [ln.split("=", 1)[1].strip() for ln in _lxc_config(host, name).splitlines()
                if ln.startswith("lxc.net.0.link")][0]
        assert _link_exists(veth)
        res = host.run("corrald", "sql", "global", BROKEN[case].format(name=name))
        assert res.returncode == 0 and "Rows affected: 1" in res.stdout, res.stdout + res.stderr
        for path in ("/1.0/instances", "/1.0/instances?recursion=1", "/1.0/instances?recursion=2",
                     f"/1.0/instances/{name}"):
            assert host.get(path).status == 200, path
        assert name in host.lxc("list", "-c", "n", "-f", "csv").stdout.split()
        host.lxc("stop", "-f", name)   # a stop alone gives the host interfaces back
        wait_for(lambda: not _link_exists(veth) and not _link_exists(peer), timeout=10)
        host.lxc("delete", "-f", name)
        assert host.get(f"/1.0/instances/{name}").status == 404
        wait_for(lambda: not _link_exists(veth) and not _link_exists(peer), timeout=10)
    finally:
        host.lxc("delete", "-f", name, check=False)


def test_broken_record_refuses_to_start(host):
    name = unique("brs")
    host.lxc("init", "busybox", name)
    try:
        host.run("corrald", "sql", "global", BROKEN["config value NULL"].format(name=name), check=True)
        r = host.request("PUT", f"/1.0/instances/{name}/state", {"action": "start"})
        op = host.wait_op(r)
        assert op["status"] == "Failure" and "cannot be loaded" in op["err"], op
        assert host.get(f"/1.0/instances/{name}").metadata["status"] == "Stopped"
    finally:
        host.lxc("delete", "-f", name, check=False)
