"""Everyday commands of the real lxc 5.0 client against corrald: exec --cwd/--user, list filters,
info --resources, storage volume export/import, and the other commands that must work as with LXD."""
import json
import os
import tarfile

import pytest

from helpers import unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(host):
    """A running and a stopped instance (with user.foo on the stopped one)."""
    run, stop = unique("run"), unique("stp")
    host.lxc("launch", "busybox", run)
    host.lxc("init", "busybox", stop, "-c", "user.foo=bar", "-c", "security.privileged=true")
    yield host, run, stop
    host.lxc("delete", "-f", run, stop, check=False)


def _listed(host, *args) -> list[str]:
    return sorted(line for line in host.lxc("list", *args, "-c", "n", "-f", "csv").stdout.split("\n") if line)


def test_exec_cwd_user_group(pair):
    host, run, _ = pair
    assert host.lxc("exec", run, "--cwd", "/tmp", "--", "pwd").stdout == "/tmp\n"
    assert host.lxc("exec", run, "--user", "1000", "--", "id", "-u").stdout == "1000\n"
    assert host.lxc("exec", run, "--user", "1000", "--group", "2000", "--", "sh", "-c",
                    "id -u; id -g; touch /tmp/owned; stat -c %u:%g /tmp/owned").stdout.split() == \
        ["1000", "2000", "1000:2000"]
    # without --cwd: HOME (LXD's default)
    assert host.lxc("exec", run, "--env", "HOME=/etc", "--", "pwd").stdout == "/etc\n"


def test_list_filters_match_lxd(pair):
    host, run, stop = pair
    mine = {run, stop}
    for f in ("status=running", "status=Running", "status=RUNNING"):
        assert set(_listed(host, f)) & mine == {run}, f
    assert set(_listed(host, "status=stopped")) & mine == {stop}
    assert set(_listed(host, "type=container")) >= mine
    assert set(_listed(host, "type=virtual-machine")) & mine == set()
    assert _listed(host, "user.foo=bar") == [stop]
    assert set(_listed(host, "security.privileged=true")) & mine == {stop}
    assert _listed(host, f"{run[:4]}.*{run[-3:]}") == [run]          # a name regex (client side)
    assert _listed(host, f"name={run}") == [run]
    assert set(_listed(host, "status=running", "type=container")) & mine == {run}
    # the server-side filter itself: LXD's case-insensitive, anchored regular expression
    meta = host.get("/1.0/instances?filter=status+eq+running&recursion=1").metadata
    assert run in {i["name"] for i in meta} and stop not in {i["name"] for i in meta}
    meta = host.get("/1.0/instances?filter=status+eq+run&recursion=1").metadata
    assert run not in {i["name"] for i in meta}
    assert host.get("/1.0/instances?filter=status+eq&recursion=1").status == 400


def test_list_formats(pair):
    host, run, stop = pair
    rows = json.loads(host.lxc("list", run, "--format", "json").stdout)
    assert [r["name"] for r in rows] == [run] and rows[0]["state"]["status"] == "Running"
    assert host.lxc("list", stop, "-c", "nsP", "-f", "csv").stdout == f"{stop},STOPPED,default\n"
    assert f"name: {run}" in host.lxc("list", run, "--format", "yaml").stdout


def test_info_resources(host):
    out = host.lxc("info", "--resources").stdout
    assert out.startswith("CPU") and "Memory:" in out and "Total:" in out
    res = host.get("/1.0/resources").metadata
    assert res["cpu"]["total"] >= 1


def test_storage_volume_export_import(pair, tmp_path):
    host, run, _ = pair
    vol, back = unique("vol"), unique("vol")
    tar = str(tmp_path / "vol.tar.gz")
    try:
        host.lxc("storage", "volume", "create", "default", vol, "user.tag=orig")
        host.lxc("storage", "volume", "attach", "default", vol, run, "/mnt")
        host.lxc("exec", run, "--", "sh", "-c", "echo one > /mnt/f; chown 1000:1000 /mnt/f")
        host.lxc("storage", "volume", "snapshot", "default", vol, "s0")
        host.lxc("exec", run, "--", "sh", "-c", "echo two > /mnt/f")
        host.lxc("storage", "volume", "export", "default", vol, tar)
        with tarfile.open(tar) as tf:
            names = tf.getnames()
        assert {"backup/index.yaml", "backup/volume/f", "backup/volume-snapshots/s0/f"} <= set(names)
        # the backup the export made is gone again (as with LXD)
        assert host.get(f"/1.0/storage-pools/default/volumes/custom/{vol}/backups").metadata == []
        host.lxc("storage", "volume", "import", "default", tar, back)
        v = host.get(f"/1.0/storage-pools/default/volumes/custom/{back}").metadata
        assert v["config"]["user.tag"] == "orig"
        snaps = host.get(f"/1.0/storage-pools/default/volumes/custom/{back}/snapshots").metadata
        assert [s.rsplit("/", 1)[1] for s in snaps] == ["s0"]
        host.lxc("storage", "volume", "attach", "default", back, run, "/mnt2")
        assert host.lxc("exec", run, "--", "cat", "/mnt2/f").stdout == "two\n"
        assert host.lxc("exec", run, "--", "stat", "-c", "%u:%g", "/mnt2/f").stdout == "1000:1000\n"
        # a second import under the same name is refused; an instance backup is not a volume backup
        r = host.lxc("storage", "volume", "import", "default", tar, back, check=False)
        assert r.returncode != 0 and "already exists" in r.stderr
        inst_tar = str(tmp_path / "inst.tar.gz")
        host.lxc("export", run, inst_tar, "--instance-only")
        r = host.lxc("storage", "volume", "import", "default", inst_tar, unique("vol"), check=False)
        assert r.returncode != 0 and "not a custom volume backup" in r.stderr
    finally:
        host.lxc("storage", "volume", "detach", "default", back, run, check=False)
        host.lxc("storage", "volume", "detach", "default", vol, run, check=False)
        host.lxc("storage", "volume", "delete", "default", back, check=False)
        host.lxc("storage", "volume", "delete", "default", vol, check=False)
    assert not os.path.exists(os.path.join(host.dir, "backups", "custom", "default", f"default_{vol}"))


def test_everyday_instance_commands(host):
    a, b, c = unique("ev"), unique("ev"), unique("ev")
    try:
        host.lxc("init", "busybox", a)
        host.lxc("rename", a, b)
        host.lxc("move", b, c)                       # a local move is a rename
        assert _listed(host, c) == [c]
        host.lxc("config", "device", "add", c, "d1", "disk", "source=/tmp", "path=/hosttmp")
        assert "path: /hosttmp" in host.lxc("config", "device", "show", c).stdout
        host.lxc("config", "device", "remove", c, "d1")
        assert "root:" in host.lxc("config", "show", c, "--expanded").stdout
        host.lxc("start", c)
        host.lxc("pause", c)
        assert host.lxc("list", c, "-c", "s", "-f", "csv").stdout == "FROZEN\n"
        host.lxc("start", c)
        host.lxc("restart", "--force", c)
        assert host.lxc("list", c, "-c", "s", "-f", "csv").stdout == "RUNNING\n"
        host.lxc("snapshot", c, "s1")
        out = host.lxc("storage", "volume", "info", "default", f"container/{c}").stdout
        assert "Snapshots:" in out and "s1" in out
        assert "name: s1" in host.lxc("storage", "volume", "show", "default", f"container/{c}/s1").stdout
        assert host.lxc("info", c, "--show-log").returncode == 0
    finally:
        host.lxc("delete", "-f", a, b, c, check=False)
