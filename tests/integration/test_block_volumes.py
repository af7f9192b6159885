"""Block custom volumes (`lxc storage volume create POOL VOL --type=block`) on dir and btrfs, driven by
the real lxc client: create with a size (and LXD's 10GiB default), snapshot, restore, copy, rename,
resize (grow; shrinking refused with LXD's error), delete, and the refusal to attach one to a
container. Every pool, volume and instance made here is removed in the finally, also on failure.
"""
import os
import subprocess

import pytest

from helpers import unique

pytestmark = pytest.mark.integration

MiB = 2**20


def pool_path(d, pool):
    p = d.get(f"/1.0/storage-pools/{pool}").metadata
    if p["driver"] == "btrfs" and p["config"]["source"].endswith(".img"):
        return os.path.join(d.dir, "storage-pools", pool)
    return p["config"]["source"]


def disk_of(d, pool, vol, snap=None):
    """Where the test expects the volume's disk file (LXD's layout: <volume dir>/root.img)."""
    root = pool_path(d, pool)
    if snap:
        return os.path.join(root, "custom-snapshots", f"default_{vol}", snap, "root.img")
    return os.path.join(root, "custom", f"default_{vol}", "root.img")


def read_head(path, n):
    with open(path, "rb") as f:
        return f.read(n)


def write_head(path, data):
    with open(path, "r+b") as f:
        f.write(data)


@pytest.mark.parametrize("driver", ["dir", "btrfs"])
def test_block_volumes(host, driver):
    d = host
    pool, c = unique("bp"), unique("c")
    b1, b2, b3, b4 = (unique("b") for _ in range(4))
    try:
        if driver == "btrfs":
            d.lxc("storage", "create", pool, "btrfs", "size=1GiB")
        else:
            d.lxc("storage", "create", pool, "dir")

        # create with a size: a file of that size, content_type "block" in the API
        d.lxc("storage", "volume", "create", pool, b1, "--type=block", "size=20MiB")
        v = d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{b1}").metadata
        assert v["content_type"] == "block" and v["config"] == {"size": "20MiB"}
        disk = disk_of(d, pool, b1)
        assert os.path.getsize(disk) == 20 * MiB
        if driver == "btrfs":
            assert os.lstat(os.path.dirname(disk)).st_ino == 256   # its own subvolume
            assert "C" in subprocess.run(["lsattr", "-d", os.path.dirname(disk)], capture_output=True,
                                         text=True).stdout.split()[0]   # nodatacow
        # no size: LXD's default of 10GiB (sparse), nothing recorded
        d.lxc("storage", "volume", "create", pool, b2, "--type=block")
        assert d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{b2}").metadata["config"] == {}
        assert os.path.getsize(disk_of(d, pool, b2)) == 10 * 2**30
        assert "block" in d.lxc("storage", "volume", "list", pool).stdout
        r = d.lxc("storage", "volume", "create", pool, unique("b"), "--type=iso", check=False)
        assert r.returncode != 0

        # snapshot, change, restore
        write_head(disk, b"before")
        d.lxc("storage", "volume", "snapshot", pool, b1, "s0")
        snap = d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{b1}/snapshots/s0").metadata
        assert snap["content_type"] == "block" and snap["config"]["size"] == "20MiB"
        assert read_head(disk_of(d, pool, b1, "s0"), 6) == b"before"
        write_head(disk, b"after!")
        d.lxc("storage", "volume", "restore", pool, b1, "s0")
        assert read_head(disk_of(d, pool, b1), 6) == b"before"

        # copy (with its snapshot), then rename the copy
        d.lxc("storage", "volume", "copy", f"{pool}/{b1}", f"{pool}/{b3}")
        cp = d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{b3}").metadata
        assert cp["content_type"] == "block" and cp["config"] == {"size": "20MiB"}
        assert read_head(disk_of(d, pool, b3), 6) == b"before"
        assert os.path.exists(disk_of(d, pool, b3, "s0"))
        d.lxc("storage", "volume", "rename", pool, b3, b4)
        assert d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{b3}").status == 404
        assert read_head(disk_of(d, pool, b4), 6) == b"before" and not os.path.exists(disk_of(d, pool, b3))

        # resize: grow, and shrinking refused with LXD's error (nothing changed)
        d.lxc("storage", "volume", "set", pool, b1, "size=40MiB")
        assert os.path.getsize(disk_of(d, pool, b1)) == 40 * MiB
        r = d.lxc("storage", "volume", "set", pool, b1, "size=10MiB", check=False)
        assert r.returncode != 0 and "Block volumes cannot be shrunk: Cannot be shrunk" in r.stderr
        assert os.path.getsize(disk_of(d, pool, b1)) == 40 * MiB
        assert d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{b1}").metadata["config"]["size"] == "40MiB"
        assert read_head(disk_of(d, pool, b1), 6) == b"before"
        # usage of a block volume: LXD's "Not supported"
        r = d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{b1}/state")
        assert r.status == 500 and r.json["error"] == "Not supported"

        # attaching one to a container is refused with LXD's error, and changes nothing
        d.lxc("init", "busybox", c, "-s", pool)
        for cmd in (("storage", "volume", "attach", pool, b1, c, "/mnt"),
                    ("config", "device", "add", c, "blk", "disk", f"pool={pool}", f"source={b1}", "path=/mnt")):
            r = d.lxc(*cmd, check=False)
            assert r.returncode != 0 and "Custom block volumes cannot be used on containers" in r.stderr, r.stderr
        assert set(d.get(f"/1.0/instances/{c}").metadata["devices"]) <= {"root"}
        assert d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{b1}").metadata["used_by"] == []

        # delete: the volumes and their snapshots are gone from the pool
        for vol in (b1, b2, b4):
            d.lxc("storage", "volume", "delete", pool, vol)
            assert not os.path.exists(os.path.dirname(disk_of(d, pool, vol)))
            assert not os.path.exists(os.path.dirname(os.path.dirname(disk_of(d, pool, vol, "s0"))))
    finally:
        d.lxc("delete", "-f", c, check=False)
        for vol in (b1, b2, b3, b4):
            d.lxc("storage", "volume", "delete", pool, vol, check=False)
        d.lxc("storage", "delete", pool, check=False)
    assert not os.path.exists(os.path.join(d.dir, "disks", f"{pool}.img"))
    assert not any(f" {os.path.join(d.dir, 'storage-pools', pool)} " in line for line in open("/proc/self/mountinfo"))
