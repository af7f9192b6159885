"""`lxc import` with the real lxc 5.0 client: backups from Corral's `lxc export` and from LXD 5.0.2,
snapshots, --storage, a new name, and tarballs that must be refused without changing anything."""
import io
import os
import tarfile
import time

import pytest

from helpers import unique

pytestmark = pytest.mark.integration

DATA = os.path.join(os.path.dirname(__file__), "data")
LXD_BACKUP = os.path.join(DATA, "lxd-5.0.2-busybox-backup.tar.xz")


def _names(host) -> set[str]:
    return {u.rsplit("/", 1)[1] for u in host.get("/1.0/instances").metadata}


def _pool_dirs(host) -> set[str]:
    base = os.path.join(host.dir, "storage-pools")
    out = set()
    for root, dirs, _ in os.walk(base):
        depth = root[len(base):].count(os.sep)
        if depth >= 3:
            dirs[:] = []
            continue
        out.update(os.path.join(root, d) for d in dirs)
    return out


def _uploads(host) -> list[str]:
    d = os.path.join(host.dir, "backups")
    return [f for f in os.listdir(d) if f.startswith(".upload-")] if os.path.isdir(d) else []


def test_import_lxd_502_backup_starts_with_snapshot(host, tmp_path):
    name = unique("lxdimp")
    try:
        host.lxc("import", LXD_BACKUP, name)
        info = host.get(f"/1.0/instances/{name}").metadata
        assert info["config"]["user.origin"] == "lxd-5.0.2"
        assert info["status"] == "Stopped"
        snaps = host.get(f"/1.0/instances/{name}/snapshots?recursion=1").metadata
        assert [s["name"] for s in snaps] == ["snap0"]
        host.lxc("start", name)
        out = host.lxc("exec", name, "--", "cat", "/root/marker.txt", "/root/after.txt").stdout
        assert out == "hello-from-lxd\nafter-snapshot\n"
        # LXD stored the files shifted (1000000+): they are root's inside the container again
        assert host.lxc("exec", name, "--", "stat", "-c", "%u:%g", "/root/marker.txt").stdout.strip() == "0:0"
        host.lxc("stop", name, "--force")
        host.lxc("restore", name, "snap0")
        host.lxc("start", name)
        assert host.lxc("exec", name, "--", "ls", "/root").stdout.split() == ["marker.txt"]
    finally:
        host.lxc("delete", "-f", name, check=False)


def test_export_import_round_trip(host, tmp_path):
    src, copy, other, pool = unique("exp"), unique("imp"), unique("imp"), unique("pool")
    tar = str(tmp_path / "b.tar.gz")
    try:
        host.lxc("launch", "busybox", src, "-c", "user.k=v")
        host.lxc("exec", src, "--", "sh", "-c", "echo one > /root/f")
        host.lxc("snapshot", src, "s1")
        host.lxc("exec", src, "--", "sh", "-c", "echo two > /root/f")
        host.lxc("export", src, tar)
        # LXD's layout, readable by LXD 5.0's import: index + backup.yaml, files said to be unshifted
        from corral.backup.format import load_yaml
        with tarfile.open(tar) as tf:
            index = load_yaml(tf.extractfile("backup/index.yaml").read())
            by = load_yaml(tf.extractfile("backup/container/backup.yaml").read())
            assert "backup/snapshots/s1/rootfs/root/f" in tf.getnames()
        assert index["type"] == "container" and index["snapshots"] == ["s1"]
        assert by["container"]["name"] == src and [x["name"] for x in by["snapshots"]] == ["s1"]
        assert by["container"]["config"]["volatile.last_state.idmap"] == "[]"
        host.lxc("import", tar, copy)
        assert host.get(f"/1.0/instances/{copy}").metadata["config"]["user.k"] == "v"
        assert [s["name"] for s in host.get(f"/1.0/instances/{copy}/snapshots?recursion=1").metadata] == ["s1"]
        host.lxc("start", copy)
        assert host.lxc("exec", copy, "--", "cat", "/root/f").stdout == "two\n"
        host.lxc("stop", copy, "--force")
        host.lxc("restore", copy, "s1")
        host.lxc("start", copy)
        assert host.lxc("exec", copy, "--", "cat", "/root/f").stdout == "one\n"
        # a second import under a taken name is refused and changes nothing
        r = host.lxc("import", tar, copy, check=False)
        assert r.returncode != 0 and "already exists" in r.stderr
        assert host.get(f"/1.0/instances/{copy}").metadata["status"] == "Running"
        # --storage: into another pool (a local root disk device says so)
        host.lxc("storage", "create", pool, "dir")
        host.lxc("import", tar, other, "--storage", pool)
        inst = host.get(f"/1.0/instances/{other}").metadata
        assert inst["expanded_devices"]["root"]["pool"] == pool
        assert os.path.isdir(os.path.join(host.dir, "storage-pools", pool, "containers", other, "rootfs"))
        host.lxc("start", other)
        assert host.lxc("exec", other, "--", "cat", "/root/f").stdout == "two\n"
    finally:
        host.lxc("delete", "-f", src, copy, other, check=False)
        host.lxc("storage", "delete", pool, check=False)


def test_import_instance_only_and_compressions(host, tmp_path):
    src, a, b = unique("exp"), unique("imp"), unique("imp")
    try:
        host.lxc("init", "busybox", src)
        host.lxc("snapshot", src, "s1")
        host.lxc("export", src, str(tmp_path / "o.tar.gz"), "--instance-only")
        host.lxc("import", str(tmp_path / "o.tar.gz"), a)
        assert host.get(f"/1.0/instances/{a}/snapshots").metadata == []
        host.lxc("export", src, str(tmp_path / "x.tar.xz"), "--compression", "xz")
        host.lxc("import", str(tmp_path / "x.tar.xz"), b)
        assert len(host.get(f"/1.0/instances/{b}/snapshots").metadata) == 1
    finally:
        host.lxc("delete", "-f", src, a, b, check=False)


def _tarball(path, extra, index: bool = True) -> str:
    with tarfile.open(path, "w:gz") as tf:
        def add(name, data=b"", **kw):
            ti = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(ti, k, v)
            if ti.type == tarfile.REGTYPE:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
        if index:
            add("backup/index.yaml", b"name: evil\nbackend: dir\npool: default\nsnapshots: []\n"
                b"config:\n  container:\n    name: evil\n    architecture: x86_64\n    config: {}\n"
                b"    devices: {}\n    profiles: [default]\n")
        add("backup/container", type=tarfile.DIRTYPE, mode=0o700)
        add("backup/container/rootfs", type=tarfile.DIRTYPE, mode=0o755)
        for args, kw in extra:
            add(*args, **kw)
    return str(path)


BAD = {
    "dotdot": ([(("backup/container/rootfs/../../../../escape",), {})], "escapes"),
    "absolute": ([(("/tmp/corral-abs-escape",), {})], "absolute"),
    "below-symlink": ([(("backup/container/rootfs/etc",), {"type": tarfile.SYMTYPE, "linkname": "/etc"}),
                       (("backup/container/rootfs/etc/passwd", b"x"), {})], "below a symlink"),
    "device": ([(("backup/container/rootfs/sda",), {"type": tarfile.BLKTYPE, "devmajor": 8})], "device node"),
    "chardev": ([(("backup/container/rootfs/mem",), {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 1})],
                "device node"),
    "hardlink-out": ([(("backup/container/rootfs/pw",), {"type": tarfile.LNKTYPE, "linkname": "/etc/passwd"})],
                     "absolute"),
    "hardlink-unknown": ([(("backup/container/rootfs/pw",), {"type": tarfile.LNKTYPE,
                                                            "linkname": "backup/container/nothere"})], "hard link"),
    "duplicate": ([(("backup/container/rootfs/a", b"1"), {}), (("backup/container/rootfs/a", b"2"), {})],
                  "twice"),
    "outside-backup": ([(("etc/cron.d/x", b"x"), {})], "outside backup/"),
    "hardlink-across-volumes": ([(("backup/container/rootfs/a", b"1"), {}),
                                 (("backup/snapshots/s/rootfs/a",), {"type": tarfile.LNKTYPE,
                                                                     "linkname": "backup/container/rootfs/a"})],
                                "hard link"),
    "template-symlink": ([(("backup/container/templates",), {"type": tarfile.DIRTYPE, "mode": 0o755}),
                          (("backup/container/templates/t.tpl",), {"type": tarfile.SYMTYPE,
                                                                  "linkname": "/etc/shadow"})], "wrong type"),
    "metadata-symlink": ([(("backup/container/metadata.yaml",), {"type": tarfile.SYMTYPE,
                                                                "linkname": "/etc/shadow"})], "wrong type"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_import_refuses_dangerous_tarballs(host, tmp_path, case):
    members, message = BAD[case]
    tar = _tarball(tmp_path / f"{case}.tar.gz", members)
    before_names, before_dirs = _names(host), _pool_dirs(host)
    r = host.lxc("import", tar, unique("evil"), check=False)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert _names(host) == before_names
    assert _pool_dirs(host) == before_dirs
    assert _uploads(host) == []
    assert not os.path.exists("/tmp/corral-abs-escape")


def test_import_refuses_rootfs_symlink(host, tmp_path):
    tar = str(tmp_path / "rootfs-link.tar.gz")
    with tarfile.open(tar, "w:gz") as tf:
        index = (b"name: evil\nsnapshots: []\nconfig:\n  container:\n    name: evil\n    config: {}\n"
                 b"    devices: {}\n    profiles: [default]\n")
        ti = tarfile.TarInfo("backup/index.yaml")
        ti.size = len(index)
        tf.addfile(ti, io.BytesIO(index))
        ti = tarfile.TarInfo("backup/container/rootfs")
        ti.type, ti.linkname = tarfile.SYMTYPE, "/"
        tf.addfile(ti)
    before = _pool_dirs(host)
    r = host.lxc("import", tar, unique("evil"), check=False)
    assert r.returncode != 0 and "wrong type" in r.stderr, r.stderr
    assert _pool_dirs(host) == before


def test_import_refuses_bad_input(host, tmp_path):
    before_names, before_dirs = _names(host), _pool_dirs(host)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a tarball" * 10)
    cases = [(str(garbage), "Invalid backup tarball"),
             (_tarball(tmp_path / "noindex.tar.gz", [], index=False), "no backup/index.yaml")]
    for tar, message in cases:
        r = host.lxc("import", tar, unique("bad"), check=False)
        assert r.returncode != 0 and message in r.stderr, r.stderr
    # an unknown pool, a missing profile, a bad name: 4xx from the API, nothing made
    ok = _tarball(tmp_path / "ok.tar.gz", [])
    with open(ok, "rb") as f:
        raw = f.read()
    for headers, status in (({"X-LXD-pool": unique("nopool")}, 404), ({"X-LXD-name": "bad_name!"}, 400)):
        resp = host.request("POST", "/1.0/instances", raw=raw,
                            headers={"Content-Type": "application/octet-stream", **headers})
        assert resp.status == status, resp.body
    assert _names(host) == before_names
    assert _pool_dirs(host) == before_dirs
    time.sleep(0.2)
    assert _uploads(host) == []


def test_volume_import_refuses_dangerous_tarball(host, tmp_path):
    tar = str(tmp_path / "vol-evil.tar.gz")
    with tarfile.open(tar, "w:gz") as tf:
        index = b"name: v\nsnapshots: []\ntype: custom\nconfig:\n  volume:\n    name: v\n    config: {}\n"
        for name, data, kind, link in (("backup/index.yaml", index, tarfile.REGTYPE, ""),
                                       ("backup/volume", b"", tarfile.SYMTYPE, "/etc"),
                                       ("backup/volume/passwd", b"x", tarfile.REGTYPE, "")):
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname, ti.size = kind, link, len(data)
            tf.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    name = unique("vol")
    before = _pool_dirs(host)
    r = host.lxc("storage", "volume", "import", "default", tar, name, check=False)
    assert r.returncode != 0 and "below a symlink" in r.stderr, r.stderr
    assert host.get(f"/1.0/storage-pools/default/volumes/custom/{name}").status == 404
    assert _pool_dirs(host) == before and _uploads(host) == []


def test_volume_import_of_lxd_502_backup(host):
    vol, inst = unique("lxdvol"), unique("volc")
    try:
        host.lxc("storage", "volume", "import", "default", os.path.join(DATA, "lxd-5.0.2-custom-volume-backup.tar.gz"),
                 vol)
        v = host.get(f"/1.0/storage-pools/default/volumes/custom/{vol}").metadata
        assert v["config"]["user.origin"] == "lxd-5.0.2"
        snaps = host.get(f"/1.0/storage-pools/default/volumes/custom/{vol}/snapshots?recursion=1").metadata
        assert [s["name"] for s in snaps] == ["snap0"]
        host.lxc("launch", "busybox", inst)
        host.lxc("storage", "volume", "attach", "default", vol, inst, "/data")
        assert host.lxc("exec", inst, "--", "cat", "/data/data.txt", "/data/sub/n.txt").stdout == "second\nnested\n"
        assert host.lxc("exec", inst, "--", "stat", "-c", "%u:%g", "/data/data.txt").stdout == "1000:1000\n"
        host.lxc("storage", "volume", "detach", "default", vol, inst)
        host.lxc("storage", "volume", "restore", "default", vol, "snap0")
        host.lxc("storage", "volume", "attach", "default", vol, inst, "/data")
        assert host.lxc("exec", inst, "--", "cat", "/data/data.txt").stdout == "first\n"
    finally:
        host.lxc("delete", "-f", inst, check=False)
        host.lxc("storage", "volume", "delete", "default", vol, check=False)
