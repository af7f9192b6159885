"""Acceptance for containers with the real lxc client and pylxd, on real busybox containers."""
import json
import os
import subprocess
import tarfile

import pytest

from helpers import unique

pytestmark = pytest.mark.integration


def state(host, name):
    return host.get(f"/1.0/instances/{name}").metadata["status"]


def test_lxc_full_lifecycle(host, tmp_path):
    c, c2 = unique("c"), unique("cp")
    host.lxc("launch", "busybox", c)
    assert state(host, c) == "Running"
    listing = json.loads(host.lxc("list", "--format", "json").stdout)
    assert any(x["name"] == c and x["status"] == "Running" for x in listing)

    # exec: exit code and separated streams
    r = host.lxc("exec", c, "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert r.returncode == 3 and r.stdout == "out\n" and r.stderr == "err\n"
    r = host.lxc("exec", c, "--", "cat", input="piped stdin\n")
    assert r.stdout == "piped stdin\n"

    # interactive exec through a pty
    r = subprocess.run(["script", "-qec", f"lxc exec {c} -- sh -c 'tty; stty size'", "/dev/null"],
                       env=host.env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "/dev/pts/" in r.stdout, r.stdout + r.stderr

    # files: content, mode and ownership preserved both ways
    src = tmp_path / "in.txt"
    src.write_bytes(b"corral file\n")
    host.lxc("file", "push", str(src), f"{c}/root/in.txt", "--uid", "1000", "--gid", "1001", "--mode", "0640")
    ls = host.lxc("exec", c, "--", "ls", "-ln", "/root/in.txt").stdout.split()
    assert ls[0] == "-rw-r-----" and ls[2:4] == ["1000", "1001"]
    host.lxc("file", "pull", f"{c}/root/in.txt", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_bytes() == b"corral file\n"
    assert oct((tmp_path / "out.txt").stat().st_mode & 0o777) == "0o640"

    # snapshot + restore
    host.lxc("snapshot", c, "s0")
    host.lxc("exec", c, "--", "rm", "/root/in.txt")
    host.lxc("restore", c, "s0")
    assert host.lxc("exec", c, "--", "cat", "/root/in.txt").stdout == "corral file\n"

    host.lxc("export", c, str(tmp_path / "backup.tar.gz"))
    with tarfile.open(tmp_path / "backup.tar.gz") as tf:
        names = tf.getnames()
    assert "backup/index.yaml" in names and "backup/snapshots/s0/rootfs/root/in.txt" in names
    assert host.get(f"/1.0/instances/{c}/backups").metadata == []   # lxc removes its temporary backup

    info = host.lxc("info", c).stdout
    assert f"Name: {c}" in info and "Status: RUNNING" in info and "s0" in info

    # stop / start / restart
    host.lxc("stop", c)
    assert state(host, c) == "Stopped"
    host.lxc("start", c)
    assert state(host, c) == "Running"
    host.lxc("restart", c)
    assert state(host, c) == "Running"

    # copy, publish, console log
    host.lxc("copy", c, c2)
    assert state(host, c2) == "Stopped"
    assert [x.rsplit("/", 1)[1] for x in host.get(f"/1.0/instances/{c2}/snapshots").metadata] == ["s0"]
    host.lxc("start", c2)
    assert host.lxc("exec", c2, "--", "cat", "/root/in.txt").stdout == "corral file\n"
    alias = unique("pub")
    host.lxc("publish", c2, "--alias", alias, "--force")
    images = json.loads(host.lxc("image", "list", "--format", "json").stdout)
    assert any(any(a["name"] == alias for a in i["aliases"]) for i in images)
    assert state(host, c2) == "Running"   # --force stops it, publishes and starts it again
    r = host.lxc("console", c, "--show-log")
    assert r.returncode == 0
    host.lxc("image", "delete", alias)

    # delete -f of running instances
    host.lxc("delete", "-f", c, c2)
    assert host.get(f"/1.0/instances/{c}").status == 404
    assert not os.path.exists(os.path.join(host.dir, "storage-pools", "default", "containers", c))


def test_delete_running_needs_force(host):
    c = unique("dr")
    host.lxc("launch", "busybox", c)
    r = host.request("DELETE", f"/1.0/instances/{c}")
    assert r.status == 400 and r.json["error"] == "Instance is running"
    host.lxc("delete", "-f", c)


def test_pylxd_instances(host):
    pylxd = pytest.importorskip("pylxd")
    client = pylxd.Client(endpoint=host.socket)
    name = unique("py")
    inst = client.instances.create({"name": name, "source": {"type": "image", "alias": "busybox"}}, wait=True)
    try:
        inst.start(wait=True)
        res = inst.execute(["sh", "-c", "echo hello; echo oops >&2; exit 2"])
        assert (res.exit_code, res.stdout, res.stderr) == (2, "hello\n", "oops\n")
        inst.files.put("/root/p.txt", b"pylxd data")
        assert inst.files.get("/root/p.txt") == b"pylxd data"
        inst.snapshots.create("ps0", wait=True)
        assert [s.name for s in inst.snapshots.all()] == ["ps0"]
        inst.stop(wait=True)
        assert client.instances.get(name).status == "Stopped"
    finally:
        inst.delete(wait=True)
    assert not client.instances.exists(name)


def test_unprivileged_mapping_without_chown(host):
    c = unique("un")
    host.lxc("launch", "busybox", c)
    try:
        pid = host.get(f"/1.0/instances/{c}/state").metadata["pid"]
        with open(f"/proc/{pid}/status") as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        host_uid = int(uid_line.split()[1])
        base = int(host.get(f"/1.0/instances/{c}").metadata["config"]["volatile.idmap.base"])
        assert host_uid == base and host_uid != 0
        rootfs = os.path.join(host.dir, "storage-pools", "default", "containers", c, "rootfs")
        assert os.stat(os.path.join(rootfs, "bin", "busybox")).st_uid == 0   # not chowned to the map
        host.lxc("exec", c, "--", "touch", "/root/made-inside")
        assert os.stat(os.path.join(rootfs, "root", "made-inside")).st_uid == 0
        print(f"container init runs as host uid {host_uid}; rootfs files stay uid 0 on disk")
    finally:
        host.lxc("delete", "-f", c)


def test_files_api_cannot_escape_through_symlinks(host):
    c = unique("fs")
    host.lxc("launch", "busybox", c)
    marker = f"/tmp/{unique('host-marker')}"
    try:
        host.lxc("exec", c, "--", "ln", "-s", "/", "/root/hostroot")
        host.lxc("exec", c, "--", "ln", "-s", "../../../../../../../..", "/root/up")
        host.lxc("exec", c, "--", "sh", "-c", "echo inside > /etc/marker-inside")
        for via in ("/root/hostroot", "/root/up"):
            r = host.request("POST", f"/1.0/instances/{c}/files?path={via}{marker}", raw=b"evil",
                             headers={"X-LXD-type": "file"})
            assert not os.path.exists(marker)
            r = host.get(f"/1.0/instances/{c}/files?path={via}/etc/hostname")
            assert r.status in (200, 404)
            if r.status == 200:   # resolved inside the container: its own hostname, not the host's
                assert r.body.decode().strip() == c
        rootfs = os.path.join(host.dir, "storage-pools", "default", "containers", c, "rootfs")
        assert os.path.exists(os.path.join(rootfs, marker.lstrip("/")))
    finally:
        host.lxc("delete", "-f", c)
        if os.path.exists(marker):
            os.unlink(marker)


def test_bad_instance_requests_change_nothing(host):
    before = host.get("/1.0/instances").metadata
    for body in ({"name": "1bad", "source": {"type": "none"}},
                 {"name": "bad_name", "source": {"type": "none"}},
                 {"name": unique("k"), "source": {"type": "none"}, "config": {"nope": "1"}},
                 {"name": unique("k"), "source": {"type": "image", "alias": "no-such-image"}},
                 {"name": unique("k"), "source": {"type": "none"}, "profiles": ["no-such-profile"]},
                 {"name": unique("k"), "type": "virtual-machine", "source": {"type": "none"},
                  "config": {"raw.lxc": "lxc.environment=A=1"}},   # a container's key on a VM
                 {"name": unique("k"), "type": "no-such-type", "source": {"type": "none"}}):
        r = host.request("POST", "/1.0/instances", body)
        assert r.status >= 400 and r.json["type"] == "error", body
    assert host.get("/1.0/instances").metadata == before
    assert host.get("/1.0/instances/nope").json["error"] == "Instance not found"


def test_idmap_isolated_gives_distinct_ranges(host):
    a, b, shared = unique("ia"), unique("ib"), unique("is")
    try:
        host.lxc("launch", "busybox", a, "-c", "security.idmap.isolated=true")
        host.lxc("launch", "busybox", b, "-c", "security.idmap.isolated=true")
        host.lxc("launch", "busybox", shared)

        def host_uid(name):
            pid = host.get(f"/1.0/instances/{name}/state").metadata["pid"]
            with open(f"/proc/{pid}/status") as f:
                return int(next(line for line in f if line.startswith("Uid:")).split()[1])

        ua, ub, us = host_uid(a), host_uid(b), host_uid(shared)
        assert len({ua, ub, us}) == 3 and abs(ua - ub) >= 65536, (ua, ub, us)
        cfg = host.get(f"/1.0/instances/{a}").metadata["config"]
        assert json.loads(cfg["volatile.idmap.next"])[0]["Maprange"] == 65536
        assert host.lxc("exec", a, "--", "id", "-u").stdout.strip() == "0"
    finally:
        host.lxc("delete", "-f", a, b, shared, check=False)
