"""VM instance volumes (issue 14) on the fake and dir drivers, in a temporary directory: images
(qcow2 and raw) unpacked to raw root.img, instances from them with LXD's sizes and errors, empty
volumes, grow (never shrink), snapshots, restore, copies with snapshots (sparse), refresh, rename,
delete leaving nothing, backups in LXD's layout; the btrfs runs are tests/integration/test_vm_volumes_btrfs.py.
Also the refusals of the VM image unpack and the GPT move against sgdisk's."""
import os
import shutil
import subprocess

import pytest

import vmfixtures as fx
import vmscenarios as sc
from corral.errors import BadRequest
from corral.image.vmunpack import import_vm_split
from corral.storage import gpt, vmdisk
from corral.storage.drivers.dir import DirDriver
from corral.storage.drivers.fake import FakeDriver
from corral.storage.perms import tighten_pool
from corral.storage.pool import Pool

pytestmark = pytest.mark.skipif(bool(fx.missing_tools()), reason=f"needs {fx.missing_tools()}")


@pytest.fixture(params=["fake", "dir"])
def pool(request, tmp_path):
    cls = {"fake": FakeDriver, "dir": DirDriver}[request.param]
    drv = cls("p", str(tmp_path / "pool"), {})
    drv.create_pool()
    yield Pool("p", drv)
    drv.delete_pool()


@pytest.mark.parametrize("scenario", [s for s in sc.SCENARIOS if s is not sc.image_volume], ids=lambda s: s.__name__)
def test_vm_volume_scenario(pool, tmp_path, scenario):
    scenario(pool, str(tmp_path))


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_vm_image_volume(pool, tmp_path, fmt):
    sc.image_volume(pool, str(tmp_path), fmt)


def test_vm_copy_between_pools(tmp_path):
    a, b = DirDriver("a", str(tmp_path / "a"), {}), FakeDriver("b", str(tmp_path / "b"), {})
    a.create_pool(), b.create_pool()
    sc.copy_keeps_snapshots(Pool("a", a), str(tmp_path), Pool("b", b))
    a.delete_pool(), b.delete_pool()


def test_vm_volume_modes(tmp_path):
    """VM volume directories get the instance volume mode; tighten_pool fixes looser ones."""
    drv = DirDriver("p", str(tmp_path / "pool"), {})
    drv.create_pool()
    p = Pool("p", drv)
    path = p.create_instance_empty("vm1", vtype="virtual-machine")
    p.create_instance_snapshot("vm1", "s0", vtype="virtual-machine")
    assert os.stat(path).st_mode & 0o777 == drv.volume_mode
    assert os.stat(os.path.join(drv.path, "virtual-machines")).st_mode & 0o777 == drv.kind_mode
    os.chmod(path, 0o755)
    os.chmod(os.path.join(drv.path, "virtual-machines-snapshots"), 0o755)
    changed = tighten_pool(drv.path)
    assert path in changed and os.path.join(drv.path, "virtual-machines-snapshots") in changed
    assert os.stat(path).st_mode & 0o777 == drv.volume_mode
    p.delete_instance("vm1", vtype="virtual-machine")
    drv.delete_pool()


def _unpack(tmp_path, meta, disk):
    dest = tmp_path / "dest"
    with pytest.raises(BadRequest) as e:
        import_vm_split(str(meta), str(disk), str(dest))
    assert not dest.exists() and not [n for n in os.listdir(tmp_path) if n.startswith(".dest")]
    return str(e.value)


def test_vm_unpack_refusals(tmp_path):
    meta = fx.metadata_tarball(str(tmp_path / "meta.tar.gz"))
    # a container image's rootfs (a tarball) is no disk
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(tarball), "-C", str(tmp_path), "meta.tar.gz"], check=True)
    assert "not a virtual-machine disk" in _unpack(tmp_path, meta, tarball)
    assert "not a virtual-machine disk" in _unpack(tmp_path, meta, meta)   # gzip
    assert "needs its disk" in _unpack(tmp_path, meta, tmp_path / "nothing")
    # a qcow2 naming a backing file (a host file) is refused before qemu-img opens it
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw",
                    str(tmp_path / "b.qcow2")], check=True, capture_output=True)
    assert "backing file" in _unpack(tmp_path, meta, tmp_path / "b.qcow2")
    disk = fx.disk(str(tmp_path / "d.qcow2"), 16)
    # metadata with rootfs/ or a root.img of its own; metadata without metadata.yaml
    bad = fx.metadata_tarball(str(tmp_path / "m1.tar.gz"), extra={"rootfs/x": b"x"})
    assert "rootfs/" in _unpack(tmp_path, bad, disk)
    bad = fx.metadata_tarball(str(tmp_path / "m2.tar.gz"), extra={"root.img": b"x"})
    assert "root.img" in _unpack(tmp_path, bad, disk)
    subprocess.run(["tar", "-czf", str(tmp_path / "m3.tar.gz"), "-C", str(tmp_path), "d.qcow2"], check=True)
    assert "missing metadata.yaml" in _unpack(tmp_path, tmp_path / "m3.tar.gz", disk)
    # what works: the image's info
    info = import_vm_split(meta, disk, str(tmp_path / "ok"))
    assert info.type == "virtual-machine" and info.architecture == "x86_64"
    assert info.properties["os"] == "busybox" and "/etc/hostname" in info.templates
    assert sorted(os.listdir(tmp_path / "ok")) == ["metadata.yaml", "root.img", "templates"]


def test_vm_unpack_budget(tmp_path):
    """The raw disk's allocated size counts against the unpack budget."""
    from corral.image.unpack import Budget, ImageTooLarge
    meta = fx.metadata_tarball(str(tmp_path / "meta.tar.gz"))
    disk = str(tmp_path / "d.qcow2")
    raw = disk + ".raw"
    with open(raw, "wb") as f:
        f.write(os.urandom(4 * fx.MiB))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, disk], check=True)
    with pytest.raises(ImageTooLarge):
        import_vm_split(meta, disk, str(tmp_path / "dest"), budget=Budget([(2 * fx.MiB, "a test limit")]))
    assert not (tmp_path / "dest").exists()
    import_vm_split(meta, disk, str(tmp_path / "dest"), budget=Budget([(8 * fx.MiB, "a test limit")]))


def test_gpt_move_matches_sgdisk(tmp_path):
    a = fx.disk(str(tmp_path / "a.raw"), 64, "raw")
    os.truncate(a, 200 * fx.MiB)
    assert not fx.gpt_at_end(a)
    b = str(tmp_path / "b.raw")
    shutil.copyfile(a, b)
    subprocess.run(["sgdisk", "-e", b], check=True, capture_output=True)
    assert gpt.move_backup_header(a) is True and gpt.move_backup_header(a) is False
    assert fx.gpt_at_end(a)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        da, db = fa.read(), fb.read()
    # the same partition table as sgdisk's (the protective MBR's CHS bytes and sgdisk's stale old
    # backup header aside, which we clear)
    diff = [o + i for o in range(0, len(da), 1 << 16) if da[o:o + (1 << 16)] != db[o:o + (1 << 16)]
            for i in range(1 << 16) if da[o + i] != db[o + i]]
    assert all(446 + 5 <= i < 446 + 8 or 64 * fx.MiB - 512 <= i < 64 * fx.MiB for i in diff), diff[:10]


def test_gpt_move_leaves_other_disks(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"\0" * (1 << 20))
    assert gpt.move_backup_header(str(plain)) is False and plain.read_bytes() == b"\0" * (1 << 20)
    d = fx.disk(str(tmp_path / "d.raw"), 16, "raw")
    fx.write_at(d, 512 + 40, b"damage")   # in the primary header (first usable LBA): its CRC fails
    os.truncate(d, 32 * fx.MiB)
    before = open(d, "rb").read()
    assert gpt.move_backup_header(d) is False and open(d, "rb").read() == before


def test_vm_disk_rounding_and_shrink(tmp_path):
    assert vmdisk.round_size(1) == 8192 and vmdisk.round_size(8192) == 8192 and vmdisk.round_size(8193) == 16384
    f = str(tmp_path / "d")
    open(f, "wb").close()
    os.truncate(f, 1 << 20)
    assert vmdisk.grow(f, 1 << 20) is False
    with pytest.raises(Exception, match="Block volumes cannot be shrunk: Cannot be shrunk"):
        vmdisk.grow(f, 1 << 19)
    assert vmdisk.grow(f, 1 << 19, shrink_ok=True) is False and os.path.getsize(f) == 1 << 20


def test_image_store_unpacks_vm_images_for_a_pool(tmp_path):
    """Images.ensure_unpacked(fp, pool, vtype="virtual-machine") with the store's files as the
    images API keeps a VM image ($CORRAL_DIR/images/<fp> metadata tarball, <fp>.rootfs the qcow2):
    the pool's VM image volume made once, instances made from it."""
    import asyncio
    from corral.image.images import Images
    from corral.paths import Paths
    paths = Paths(str(tmp_path / "corral"))
    images = Images(None, paths, None, None, None)
    images._ensure_dir()
    meta, disk = fx.vm_image(str(tmp_path / "src"), 32)
    fp = "e" * 64
    store_meta, store_disk = images.original_paths(fp)
    shutil.copyfile(meta, store_meta)
    shutil.copyfile(disk, store_disk)
    drv = DirDriver("p", str(tmp_path / "pool"), {})
    drv.create_pool()
    p = Pool("p", drv)
    asyncio.run(images.ensure_unpacked(fp, p, vtype="virtual-machine"))
    assert p.has_image(fp, vtype="virtual-machine")
    ino = os.stat(os.path.join(drv.path, "images", fp, "root.img")).st_ino
    asyncio.run(images.ensure_unpacked(fp, p, vtype="virtual-machine"))   # there: not made again
    assert os.stat(os.path.join(drv.path, "images", fp, "root.img")).st_ino == ino
    p.create_instance_from_image("vm1", fp, vtype="virtual-machine", size="1GiB")
    assert fx.read_at(p.instance_block_path("vm1"), fx.MARKER_AT, 14) == b"CORRAL-VM-DISK"
    p.delete_instance("vm1", vtype="virtual-machine")
    p.delete_image(fp)
    drv.delete_pool()


def test_vm_volume_sent_between_members_sparse(tmp_path):
    """A VM volume's tree through the members' volume stream (storage/transfer.py): its 10GiB
    disk travels as its data only and arrives sparse, with its mode and the config files."""
    import io
    from corral.storage import transfer
    src = tmp_path / "src"
    src.mkdir()
    (src / "metadata.yaml").write_text("architecture: x86_64\n")
    disk = str(src / "root.img")
    open(disk, "wb").close()
    os.truncate(disk, 10 * fx.GiB)
    os.chmod(disk, 0o640)
    fx.write_at(disk, 3 * fx.GiB, b"middle")
    fx.write_at(disk, 10 * fx.GiB - 4, b"end!")
    buf = io.BytesIO()
    transfer.write_tree(str(src), buf)
    assert len(buf.getvalue()) < fx.MiB
    dst = tmp_path / "dst"
    dst.mkdir()
    assert transfer.extract_tree(io.BytesIO(buf.getvalue()), str(dst)) == 2
    out = str(dst / "root.img")
    assert os.path.getsize(out) == 10 * fx.GiB and fx.allocated(out) < fx.MiB
    assert fx.read_at(out, 3 * fx.GiB, 6) == b"middle" and fx.read_at(out, 10 * fx.GiB - 4, 4) == b"end!"
    assert os.stat(out).st_mode & 0o777 == 0o640
    assert (dst / "metadata.yaml").read_text() == "architecture: x86_64\n"
