"""Storage acceptance (issue 4): dir and btrfs pools, custom volumes, snapshots, disk devices,
moves between pools, no-copy launches, failure half-way and reconciliation, pylxd.

Every loop file and mount is made here and removed in a finally/fixture, even on failure.
"""
import gzip
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import pytest

from helpers import Corrald, busybox_tarball, unique, unmount_under, wait_for

pytestmark = pytest.mark.integration


def sh(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def xfs_mount():
    """A 512 MiB XFS filesystem on a loop file (this kernel has no XFS quota support: no prjquota)."""
    tmp = tempfile.mkdtemp(prefix="corral-xfs-", dir="/var/tmp")
    os.chmod(tmp, 0o711)
    img, mnt = os.path.join(tmp, "xfs.img"), os.path.join(tmp, "mnt")
    os.mkdir(mnt, 0o711)
    try:
        with open(img, "wb") as f:
            f.truncate(512 * 2**20)
        sh("mkfs.xfs", "-q", "-f", img)
        sh("mount", "-o", "loop", img, mnt)
        os.chmod(mnt, 0o711)
        yield mnt
    finally:
        unmount_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def _big_image(dest: str, mib: int = 128) -> str:
    """The busybox image plus `mib` MiB of incompressible files (an uncompressed tarball)."""
    path = os.path.join(dest, "big.tar")
    with gzip.open(busybox_tarball(), "rb") as src, open(path, "wb") as out:
        shutil.copyfileobj(src, out)
    with tarfile.open(path, "a") as tar:
        for i in range(mib // 32):
            data = os.urandom(32 * 2**20)
            ti = tarfile.TarInfo(f"rootfs/opt/big{i}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, int(time.time())
            import io
            tar.addfile(ti, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def big_image(host):
    tmp = tempfile.mkdtemp(prefix="corral-bigimg-", dir="/var/tmp")
    try:
        host.lxc("image", "import", _big_image(tmp), "--alias", "bigimg")
        yield "bigimg"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pool_path(d, pool):
    p = d.get(f"/1.0/storage-pools/{pool}").metadata
    if p["driver"] == "btrfs" and p["config"]["source"].endswith(".img"):
        return os.path.join(d.dir, "storage-pools", pool)
    return p["config"]["source"]


def is_subvolume(path):
    return os.lstat(path).st_ino == 256


def exec_out(d, c, cmd):
    return d.lxc("exec", c, "--", "sh", "-c", cmd).stdout


# ---- 1. the real lxc client ----------------------------------------------------------------------

def test_lxc_pools_volumes_devices_and_moves(host, xfs_mount):
    d = host
    b, dp = unique("b"), unique("d")
    c1, c2, v1 = unique("c"), unique("c"), unique("v")
    dsource = os.path.join(xfs_mount, dp)
    try:
        d.lxc("storage", "create", b, "btrfs", "size=2GiB")
        d.lxc("storage", "create", dp, "dir", f"source={dsource}")
        assert d.get(f"/1.0/storage-pools/{b}").metadata["config"]["size"] == "2GiB"
        d.lxc("launch", "busybox", c1, "-s", b)
        d.lxc("launch", "busybox", c2, "-s", dp)
        # btrfs: the instance volume is a subvolume snapshot of the image volume
        assert is_subvolume(os.path.join(pool_path(d, b), "containers", c1))
        assert os.path.isdir(os.path.join(dsource, "containers", c2, "rootfs"))

        # a custom volume, hot-plugged into a running container, written, moved to another instance
        d.lxc("storage", "volume", "create", b, v1)
        d.lxc("storage", "volume", "attach", b, v1, c1, "/mnt/v1")
        exec_out(d, c1, "echo hello > /mnt/v1/file")
        vdir = os.path.join(pool_path(d, b), "custom", f"default_{v1}")
        base = int(d.get(f"/1.0/instances/{c1}").metadata["config"]["volatile.idmap.base"])
        assert os.stat(os.path.join(vdir, "file")).st_uid == base   # the container's root, mapped
        assert "/mnt/v1" in exec_out(d, c1, "cat /proc/mounts")
        d.lxc("storage", "volume", "detach", b, v1, c1)
        assert "/mnt/v1" not in exec_out(d, c1, "cat /proc/mounts")
        d.lxc("storage", "volume", "attach", b, v1, c2, "/srv/data")
        assert exec_out(d, c2, "cat /srv/data/file") == "hello\n"
        assert d.get(f"/1.0/storage-pools/{b}/volumes/custom/{v1}").metadata["used_by"] == [f"/1.0/instances/{c2}"]
        # in use: not deletable
        r = d.lxc("storage", "volume", "delete", b, v1, check=False)
        assert r.returncode != 0 and "in use" in r.stderr

        # snapshot, change, restore (not while attached to a running instance)
        d.lxc("storage", "volume", "snapshot", b, v1, "s0")
        assert is_subvolume(os.path.join(pool_path(d, b), "custom-snapshots", f"default_{v1}", "s0"))
        exec_out(d, c2, "echo changed > /srv/data/file")
        d.lxc("storage", "volume", "detach", b, v1, c2)
        d.lxc("storage", "volume", "restore", b, v1, "s0")
        with open(os.path.join(vdir, "file")) as f:
            assert f.read() == "hello\n"
        assert "s0" in d.lxc("storage", "volume", "info", b, v1).stdout

        # copy between pools (with its snapshot), and usage from the state endpoint
        d.lxc("storage", "volume", "copy", f"{b}/{v1}", f"{dp}/{v1}")
        with open(os.path.join(dsource, "custom", f"default_{v1}", "file")) as f:
            assert f.read() == "hello\n"
        assert d.get(f"/1.0/storage-pools/{dp}/volumes/custom/{v1}/snapshots").metadata == [
            f"/1.0/storage-pools/{dp}/volumes/custom/{v1}/snapshots/s0"]
        assert d.get(f"/1.0/storage-pools/{dp}/volumes/custom/{v1}/state").metadata["usage"]["used"] > 0

        # move a stopped instance to the other pool
        d.lxc("stop", "-f", c1)
        d.lxc("snapshot", c1, "before-move")
        d.lxc("move", c1, "--storage", dp)
        inst = d.get(f"/1.0/instances/{c1}").metadata
        assert inst["expanded_devices"]["root"]["pool"] == dp
        assert os.path.isdir(os.path.join(dsource, "containers", c1, "rootfs"))
        assert os.path.isdir(os.path.join(dsource, "containers-snapshots", c1, "before-move"))
        assert not os.path.exists(os.path.join(pool_path(d, b), "containers", c1))
        d.lxc("start", c1)
        assert exec_out(d, c1, "echo ok") == "ok\n"

        info = d.lxc("storage", "info", b).stdout
        assert "space used:" in info and "total space:" in info
        res = d.get(f"/1.0/storage-pools/{b}/resources").metadata
        assert 0 < res["space"]["used"] < res["space"]["total"]

        # a pool in use cannot be deleted
        r = d.lxc("storage", "delete", b, check=False)
        assert r.returncode != 0 and "The storage pool is currently in use" in r.stderr
        assert d.get(f"/1.0/storage-pools/{b}").status == 200
    finally:
        for c in (c1, c2):
            d.lxc("delete", "-f", c, check=False)
        for p in (b, dp):
            d.lxc("storage", "volume", "delete", p, v1, check=False)
            d.lxc("storage", "delete", p, check=False)
    assert not os.path.exists(os.path.join(d.dir, "disks", f"{b}.img"))
    assert not any(f" {os.path.join(d.dir, 'storage-pools', b)} " in line for line in open("/proc/self/mountinfo"))


def test_volume_rename_move_and_config(host):
    d = host
    b, v, v2, vb = unique("b"), unique("v"), unique("v"), unique("v")
    try:
        d.lxc("storage", "create", b, "btrfs", "size=1GiB", "volume.size=50MiB")
        d.lxc("storage", "volume", "create", "default", v)
        # size is refused on a dir pool over ext4, and nothing changes
        r = d.request("PATCH", f"/1.0/storage-pools/default/volumes/custom/{v}", {"config": {"size": "1GiB"}})
        assert r.status == 400 and "not supported" in r.json["error"]
        assert "size" not in d.get(f"/1.0/storage-pools/default/volumes/custom/{v}").metadata["config"]
        d.lxc("storage", "volume", "rename", "default", v, v2)
        d.lxc("storage", "volume", "move", f"default/{v2}", f"{b}/{v2}")
        assert d.get(f"/1.0/storage-pools/{b}/volumes/custom/{v2}").metadata["config"] == {}   # kept as it was
        assert d.get(f"/1.0/storage-pools/default/volumes/custom/{v2}").status == 404
        assert not os.path.exists(os.path.join(pool_path(d, "default"), "custom", f"default_{v2}"))
        d.lxc("storage", "volume", "set", b, v2, "user.note", "x")
        assert d.lxc("storage", "volume", "get", b, v2, "user.note").stdout.strip() == "x"
        # a new volume gets the pool's volume.size, and the btrfs qgroup limit applies
        d.lxc("storage", "volume", "create", b, v)
        assert d.get(f"/1.0/storage-pools/{b}/volumes/custom/{v}").metadata["config"]["size"] == "50MiB"
        vdir = os.path.join(pool_path(d, b), "custom", f"default_{v}")
        r = subprocess.run(["dd", "if=/dev/zero", f"of={vdir}/f", "bs=1M", "count=80", "conv=fsync"],
                           capture_output=True, text=True)
        assert r.returncode != 0 and "quota" in r.stderr.lower()
        os.unlink(f"{vdir}/f")
        # bad input: 4xx and nothing changed
        assert d.request("PUT", f"/1.0/storage-pools/{b}/volumes/custom/{v2}",
                         {"config": {"nope": "1"}}).status == 400
        assert d.get(f"/1.0/storage-pools/{b}/volumes/custom/{v2}").metadata["config"]["user.note"] == "x"
        assert d.request("POST", f"/1.0/storage-pools/{b}/volumes/custom", {"name": v2}).status == 409
        # a block volume (tests/integration/test_block_volumes.py): the pool's volume.size is its size
        assert d.request("POST", f"/1.0/storage-pools/{b}/volumes/custom",
                         {"name": vb, "content_type": "block"}).status == 200
        assert os.path.getsize(os.path.join(pool_path(d, b), "custom", f"default_{vb}", "root.img")) == 50 * 2**20
        assert d.request("POST", f"/1.0/storage-pools/{b}/volumes/custom",
                         {"name": unique("v"), "content_type": "iso"}).status == 400
        # pool config: PATCH user keys, refuse unknown keys and source changes
        assert d.request("PATCH", f"/1.0/storage-pools/{b}", {"config": {"user.a": "1"}}).status == 200
        assert d.request("PATCH", f"/1.0/storage-pools/{b}", {"config": {"bogus": "1"}}).status == 400
        assert d.request("PATCH", f"/1.0/storage-pools/{b}", {"config": {"source": "/tmp"}}).status == 400
        d.lxc("storage", "set", b, "size", "1536MiB")
        assert d.get(f"/1.0/storage-pools/{b}/resources").metadata["space"]["total"] > 1100 * 2**20
        assert d.get(f"/1.0/storage-pools/{b}").metadata["config"]["user.a"] == "1"
    finally:
        for p, name in (("default", v), ("default", v2), (b, v2), (b, v), (b, vb)):
            d.lxc("storage", "volume", "delete", p, name, check=False)
        d.lxc("storage", "delete", b, check=False)


def test_unavailable_drivers_and_bad_pools(host):
    d = host
    for driver, missing in (("lvm", "device-mapper"), ("zfs", "zfs")):
        r = d.lxc("storage", "create", unique("x"), driver, check=False)
        assert r.returncode != 0 and missing in r.stderr, r.stderr
    for driver in ("ceph", "cephfs"):   # lxc itself refuses these without the storage_driver_ceph extension
        r = d.request("POST", "/1.0/storage-pools", {"name": unique("x"), "driver": driver})
        assert r.status == 400 and "Ceph" in r.json["error"]
    r = d.request("POST", "/1.0/storage-pools", {"name": unique("x"), "driver": "btrfs",
                                                 "config": {"source": "/var/tmp"}})
    assert r.status == 400 and "btrfs" in r.json["error"]
    r = d.request("POST", "/1.0/storage-pools", {"name": unique("x"), "driver": "dir", "config": {"size": "1GiB"}})
    assert r.status == 400
    assert not [p for p in d.get("/1.0/storage-pools").metadata if p != "/1.0/storage-pools/default"
                and "/x" in p]


def test_host_path_disk_hotplug_readonly(host):
    d = host
    c = unique("c")
    src = tempfile.mkdtemp(prefix="corral-disk-", dir="/var/tmp")
    try:
        os.chmod(src, 0o777)
        with open(os.path.join(src, "in"), "w") as f:
            f.write("from host\n")
        d.lxc("launch", "busybox", c)
        d.lxc("config", "device", "add", c, "h", "disk", f"source={src}", "path=/mnt/h")
        exec_out(d, c, "echo x > /mnt/h/out")
        base = int(d.get(f"/1.0/instances/{c}").metadata["config"]["volatile.idmap.base"])
        assert os.stat(os.path.join(src, "out")).st_uid == base
        d.lxc("config", "device", "remove", c, "h")
        d.lxc("config", "device", "add", c, "ro", "disk", f"source={src}", "path=/mnt/ro", "readonly=true")
        assert exec_out(d, c, "cat /mnt/ro/in") == "from host\n"
        r = d.lxc("exec", c, "--", "touch", "/mnt/ro/new", check=False)
        assert r.returncode != 0
        # a volume that does not exist: refused, and the device is not recorded
        r = d.lxc("config", "device", "add", c, "bad", "disk", "pool=default", "source=nope", "path=/mnt/b",
                  check=False)
        assert r.returncode != 0
        assert "bad" not in d.get(f"/1.0/instances/{c}").metadata["devices"]
        # devices survive a restart (mounted by liblxc at start)
        d.lxc("restart", "-f", c)
        assert exec_out(d, c, "cat /mnt/ro/in") == "from host\n"
    finally:
        d.lxc("delete", "-f", c, check=False)
        shutil.rmtree(src, ignore_errors=True)


# ---- 2. pylxd ------------------------------------------------------------------------------------

def test_pylxd_storage(host):
    import pylxd
    client = pylxd.Client(endpoint=host.socket)
    name, vol = unique("py"), unique("pv")
    try:
        pool = client.storage_pools.create({"name": name, "driver": "dir", "config": {}})
        assert pool.driver == "dir"
        assert client.storage_pools.exists(name)
        pool.volumes.create({"name": vol, "type": "custom", "config": {}})
        v = pool.volumes.get("custom", vol)
        assert v.name == vol and v.type == "custom"
        res = pool.resources.get()
        assert res.space["total"] > 0 and res.inodes["total"] > 0
        v.delete()
        assert vol not in [x.name for x in pool.volumes.all()]
        pool.delete()
        assert not client.storage_pools.exists(name)
    finally:
        host.request("DELETE", f"/1.0/storage-pools/{name}/volumes/custom/{vol}")
        host.request("DELETE", f"/1.0/storage-pools/{name}")


# ---- 3. launches do not copy the image -----------------------------------------------------------

def _used(path: str) -> int:
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_create_from_unpacked_image_does_not_copy(host, big_image, xfs_mount):
    """An instance from an image already unpacked in the pool shares its data (a btrfs subvolume
    snapshot; reflinks on XFS): the pool's used space grows by far less than the image's 128 MiB.
    Space, not time, so load on the machine cannot make it pass or fail."""
    d = host
    b, x = unique("b"), unique("x")
    names = []
    try:
        d.lxc("storage", "create", b, "btrfs", "size=2GiB")
        d.lxc("storage", "create", x, "dir", f"source={os.path.join(xfs_mount, x)}")
        for pool in (b, x):
            warm = unique("w")
            d.lxc("init", big_image, warm, "-s", pool)   # unpacks the image in the pool once
            d.lxc("delete", warm)
            path = pool_path(d, pool)
            before = _used(path)
            for _ in range(2):
                n = unique("t")
                names.append(n)
                d.lxc("init", big_image, n, "-s", pool)
            grown = _used(path) - before
            driver = d.get(f"/1.0/storage-pools/{pool}").metadata["driver"]
            print(f"\ntwo instances of the 128 MiB image on {driver} pool {pool}: +{grown / 2**20:.1f} MiB used")
            assert grown < 32 * 2**20, (pool, driver, grown)
    finally:
        for n in names:
            d.lxc("delete", n, check=False)
        d.lxc("storage", "delete", b, check=False)
        d.lxc("storage", "delete", x, check=False)


# ---- 4. failures half-way, reconciliation at start -----------------------------------------------

def _fill(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(2**20))


def test_disk_full_leaves_nothing(host):
    d = host
    small, v = unique("s"), unique("v")
    try:
        d.lxc("storage", "create", small, "btrfs", "size=64MiB")
        d.lxc("storage", "volume", "create", "default", v)
        _fill(os.path.join(pool_path(d, "default"), "custom", f"default_{v}", "data"), 100)
        r = d.lxc("storage", "volume", "copy", f"default/{v}", f"{small}/{v}", check=False)
        assert r.returncode != 0
        assert d.get(f"/1.0/storage-pools/{small}/volumes/custom/{v}").status == 404
        root = pool_path(d, small)
        assert os.listdir(os.path.join(root, "custom")) == []
        assert os.listdir(os.path.join(root, "custom-snapshots")) == []
        # the pool is usable afterwards and can be deleted (nothing left in it)
        d.lxc("storage", "volume", "create", small, "ok")
        d.lxc("storage", "volume", "delete", small, "ok")
    finally:
        d.lxc("storage", "volume", "delete", "default", v, check=False)
        d.lxc("storage", "delete", small, check=False)


def test_kill9_during_copy_is_reconciled_at_start():
    d = Corrald()
    try:
        d.start()
        d.run("corrald", "init", "--auto", check=True)
        d.lxc("storage", "create", "b", "btrfs", "size=3GiB")
        d.lxc("storage", "volume", "create", "default", "src")
        src = os.path.join(d.dir, "storage-pools", "default", "custom", "default_src")
        for i in range(12):
            _fill(os.path.join(src, f"f{i}"), 64)
        resp = d.request("POST", "/1.0/storage-pools/b/volumes/custom",
                         {"name": "dst", "source": {"type": "copy", "pool": "default", "name": "src"}})
        assert resp.status == 202
        partial = os.path.join(d.dir, "storage-pools", "b", "custom", "default_dst.partial")
        assert wait_for(lambda: os.path.exists(os.path.join(partial, "f0")), timeout=30)
        os.killpg(d.proc.pid, signal.SIGKILL)   # the daemon and its cp child: a crash mid-copy
        d.kill9()
        assert os.path.exists(partial)   # the half-made copy is on disk...
        d.start()
        assert not os.path.exists(partial)   # ...and gone after the restart
        assert os.listdir(os.path.join(d.dir, "storage-pools", "b", "custom")) == []
        assert d.get("/1.0/storage-pools/b/volumes/custom/dst").status == 404
        warnings = d.get("/1.0/warnings?recursion=1").metadata
        found = [w for w in warnings if w["type"] == "Leftover storage volume removed"]
        assert found and "default_dst.partial" in found[0]["last_message"], warnings
        assert found[0]["entity_url"].startswith("/1.0/storage-pools/b/")
        # the pool mounted again at start and works
        d.lxc("storage", "volume", "create", "b", "after")
        d.lxc("storage", "volume", "delete", "b", "after")
        d.lxc("storage", "delete", "b")
    finally:
        d.cleanup()


def test_restart_remounts_btrfs_and_keeps_instances():
    c1 = unique("c1")   # unique: payload cgroups are named after containers
    d = Corrald()
    try:
        d.start()
        d.run("corrald", "init", "--auto", check=True)
        d.lxc("image", "import", busybox_tarball(), "--alias", "busybox")
        d.lxc("storage", "create", "b", "btrfs", "size=1GiB")
        d.lxc("init", "busybox", c1, "-s", "b")
        d.lxc("snapshot", c1, "s1")
        d.stop()
        unmount_under(os.path.join(d.dir, "storage-pools"))   # as after a reboot
        d.start()
        assert d.get("/1.0/storage-pools/b").metadata["status"] == "Created"
        d.lxc("start", c1)
        assert d.lxc("exec", c1, "--", "echo", "up").stdout == "up\n"
        assert not [w for w in d.get("/1.0/warnings?recursion=1").metadata if "storage" in w["type"].lower()]
        d.lxc("delete", "-f", c1)
        d.lxc("storage", "delete", "b")
    finally:
        d.cleanup()


# ---- preseed -------------------------------------------------------------------------------------

def test_preseed_storage_pools(host):
    d = host
    a, b = unique("pa"), unique("pb")
    doc = (f"storage_pools:\n- name: {a}\n  driver: dir\n  description: preseeded\n"
           f"- name: {b}\n  driver: btrfs\n  config:\n    size: 1GiB\n")
    try:
        d.run("corrald", "init", "--preseed", input=doc, check=True)
        assert d.get(f"/1.0/storage-pools/{a}").metadata["description"] == "preseeded"
        assert d.get(f"/1.0/storage-pools/{b}").metadata["driver"] == "btrfs"
        d.run("corrald", "init", "--preseed", input=doc, check=True)   # twice is harmless
    finally:
        d.lxc("storage", "delete", a, check=False)
        d.lxc("storage", "delete", b, check=False)


# ---- the corral CLI ------------------------------------------------------------------------------

def test_corral_storage_cli(host):
    d = host
    p, v, c = unique("cp"), unique("cv"), unique("cc")

    def corral(*args, check=True, input=None):
        return d.run("corral", *args, check=check, input=input)
    try:
        corral("storage", "create", p, "btrfs", "size=1GiB", "--description", "cli pool")
        assert p in corral("storage", "list").stdout
        assert "driver: btrfs" in corral("storage", "show", p).stdout
        corral("storage", "set", p, "user.k=v1")
        assert corral("storage", "get", p, "user.k").stdout.strip() == "v1"
        corral("storage", "unset", p, "user.k")
        assert corral("storage", "get", p, "user.k").stdout.strip() == ""
        corral("storage", "edit", p, input="description: edited\nconfig:\n  user.e: '1'\n")
        assert d.get(f"/1.0/storage-pools/{p}").metadata["description"] == "edited"
        assert "space used:" in corral("storage", "info", p).stdout
        corral("storage", "volume", "create", p, v, "user.x=1")
        assert v in corral("storage", "volume", "list", p).stdout
        assert corral("storage", "volume", "get", p, v, "user.x").stdout.strip() == "1"
        corral("storage", "volume", "set", p, v, "user.x", "2")
        corral("storage", "volume", "unset", p, v, "user.x")
        corral("storage", "volume", "edit", p, v, input="description: vol\nconfig: {}\n")
        assert d.get(f"/1.0/storage-pools/{p}/volumes/custom/{v}").metadata["description"] == "vol"
        d.lxc("launch", "busybox", c)
        corral("storage", "volume", "attach", p, v, c, "/mnt/x")
        d.lxc("exec", c, "--", "sh", "-c", "echo 1 > /mnt/x/f")
        corral("storage", "volume", "detach", p, v, c)
        corral("storage", "volume", "snapshot", p, v, "s1")
        assert "s1" in corral("storage", "volume", "info", p, v).stdout
        corral("storage", "volume", "restore", p, v, "s1")
        corral("storage", "volume", "copy", f"{p}/{v}", f"default/{v}")
        corral("storage", "volume", "rename", "default", v, v + "r")
        corral("storage", "volume", "move", f"default/{v}r", f"{p}/{v}r")
        assert "container" in corral("storage", "volume", "show", "default", f"container/{c}").stdout
        r = corral("storage", "delete", p, check=False)
        assert r.returncode != 0 and "in use" in r.stderr
        for name in (v, v + "r"):
            corral("storage", "volume", "delete", p, name)
        corral("storage", "delete", p)
        assert d.get(f"/1.0/storage-pools/{p}").status == 404
    finally:
        d.lxc("delete", "-f", c, check=False)
        for name in (v, v + "r"):
            d.lxc("storage", "volume", "delete", p, name, check=False)
            d.lxc("storage", "volume", "delete", "default", name, check=False)
        d.lxc("storage", "delete", p, check=False)
