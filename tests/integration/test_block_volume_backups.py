"""Backups of block custom volumes with the real lxc client (`lxc storage volume export` / `import`),
on dir and btrfs: LXD's layout (backup/volume.img, backup/volume-snapshots/<snap>.img, no volume
tree), the disks sparse in the tarball and restored sparse, content, size and snapshots kept."""
import os
import tarfile

import pytest

from helpers import unique

pytestmark = pytest.mark.integration
MiB, GiB = 2**20, 2**30


def disk(d, pool, vol, snap=None):
    p = d.get(f"/1.0/storage-pools/{pool}").metadata
    root = os.path.join(d.dir, "storage-pools", pool) if p["driver"] == "btrfs" else p["config"]["source"]
    if snap:
        return os.path.join(root, "custom-snapshots", f"default_{vol}", snap, "root.img")
    return os.path.join(root, "custom", f"default_{vol}", "root.img")


def put(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def get(path, offset, n):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


@pytest.mark.parametrize("driver", ["dir", "btrfs"])
def test_block_volume_export_import(host, tmp_path, driver):
    d = host
    pool, vol, back, c = unique("bb"), unique("b"), unique("b"), unique("c")
    tar = str(tmp_path / "b.tar.gz")
    try:
        d.lxc("storage", "create", pool, driver, *(["size=1GiB"] if driver == "btrfs" else []))
        d.lxc("storage", "volume", "create", pool, vol, "--type=block", "size=4GiB", "user.tag=orig")
        put(disk(d, pool, vol), 1 * MiB, b"snapshot-data")
        d.lxc("storage", "volume", "snapshot", pool, vol, "s0")
        put(disk(d, pool, vol), 1 * MiB, b"live-data-now")
        put(disk(d, pool, vol), 3 * GiB, b"far")
        d.lxc("storage", "volume", "export", pool, vol, tar)
        assert os.path.getsize(tar) < MiB   # two 4GiB disks, a few blocks written
        with tarfile.open(tar) as tf:
            members = {m.name: m for m in tf.getmembers()}
        assert members["backup/volume.img"].size == 4 * GiB
        assert members["backup/volume-snapshots/s0.img"].size == 4 * GiB
        assert not [n for n in members if n.startswith("backup/volume/")]
        d.lxc("storage", "volume", "import", pool, tar, back)
        v = d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{back}").metadata
        assert v["content_type"] == "block" and v["config"]["user.tag"] == "orig" and v["config"]["size"] == "4GiB"
        img = disk(d, pool, back)
        assert os.path.getsize(img) == 4 * GiB and os.stat(img).st_blocks * 512 < 4 * MiB
        assert get(img, 1 * MiB, 13) == b"live-data-now" and get(img, 3 * GiB, 3) == b"far"
        assert get(disk(d, pool, back, "s0"), 1 * MiB, 13) == b"snapshot-data"
        snaps = d.get(f"/1.0/storage-pools/{pool}/volumes/custom/{back}/snapshots").metadata
        assert [s.rsplit("/", 1)[1] for s in snaps] == ["s0"]
        # a second import under that name is refused; the imported volume is known as a block one
        r = d.lxc("storage", "volume", "import", pool, tar, back, check=False)
        assert r.returncode != 0 and "already exists" in r.stderr
        d.lxc("init", "busybox", c)
        r = d.lxc("storage", "volume", "attach", pool, back, c, "/mnt", check=False)
        assert r.returncode != 0 and "Custom block volumes cannot be used on containers" in r.stderr, r.stderr
    finally:
        d.lxc("delete", "-f", c, check=False)
        for v in (back, vol):
            d.lxc("storage", "volume", "delete", pool, v, check=False)
        d.lxc("storage", "delete", pool, check=False)
