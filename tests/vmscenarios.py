"""VM instance volume scenarios run on every driver (tests/unit/test_vm_volumes.py: fake and dir;
tests/integration/test_vm_volumes_btrfs.py: btrfs on a loop file), each on a Pool the test made and
removes. Every scenario removes what it made; `empty(pool)` checks that nothing is left."""
from __future__ import annotations

import os
import tarfile

import pytest

import vmfixtures as fx
from corral.backup.format import BackupTarball
from corral.backup.tarball import write_backup
from corral.errors import BadRequest
from corral.image.vmunpack import import_vm_split
from corral.storage.drivers.base import StorageError
from corral.storage.vmbackup import PREFIX, SNAPSHOTS, backup_sources, restore_backup

VM = "virtual-machine"
MiB, GiB = fx.MiB, fx.GiB
FP = "f" * 64


def kinds(pool) -> dict[str, list[str]]:
    out = {}
    for kind in ("virtual-machines", "virtual-machines-snapshots", "images"):
        p = os.path.join(pool.driver.path, kind)
        out[kind] = sorted(os.listdir(p)) if os.path.isdir(p) else []
    return out


def empty(pool) -> None:
    assert kinds(pool) == {"virtual-machines": [], "virtual-machines-snapshots": [], "images": []}


def image(pool, tmp: str, size_mib: int = 64, fmt: str = "qcow2", fp: str = FP) -> str:
    meta, disk = fx.vm_image(os.path.join(tmp, f"img-{fmt}-{size_mib}"), size_mib, fmt)
    pool.create_image(fp, lambda d: import_vm_split(meta, disk, d), vtype=VM)
    return fp


def image_volume(pool, tmp, fmt: str) -> None:
    fp = image(pool, tmp, 64, fmt)
    try:
        assert pool.has_image(fp, vtype=VM) and not pool.has_image(fp)
        ipath = pool.driver.volume_path(pool.image_volume(fp, vtype=VM))
        assert sorted(os.listdir(ipath)) == ["metadata.yaml", "root.img", "templates"]
        disk = os.path.join(ipath, "root.img")
        # raw (no qcow2 header), the image's virtual size, sparse, the data where it was
        assert fx.read_at(disk, 0, 4) != b"QFI\xfb" and os.path.getsize(disk) == 64 * MiB
        assert fx.allocated(disk) < 8 * MiB
        assert fx.read_at(disk, fx.MARKER_AT, 14) == b"CORRAL-VM-DISK"
        assert fx.gpt_at_end(disk)
    finally:
        pool.delete_image(fp)
    empty(pool)


def from_image_sizes(pool, tmp) -> None:
    fp = image(pool, tmp, 64)
    try:
        # LXD's default root size: 10GiB, sparse (a few blocks), the GPT's backup header at the new end
        path = pool.create_instance_from_image("vm1", fp, vtype=VM)
        assert sorted(os.listdir(path)) == ["metadata.yaml", "root.img", "templates"]
        disk = pool.instance_block_path("vm1")
        assert disk == os.path.join(path, "root.img")
        assert os.path.getsize(disk) == 10 * GiB and fx.allocated(disk) < 8 * MiB
        assert fx.read_at(disk, fx.MARKER_AT, 14) == b"CORRAL-VM-DISK" and fx.gpt_at_end(disk)
        assert pool.instance_usage("vm1", vtype=VM) < 8 * MiB
        assert pool.instance_volume_names(vtype=VM) == ["vm1"] and pool.instance_volume_names() == []
        assert pool.has_instance("vm1", vtype=VM) and not pool.has_instance("vm1")
        # the root disk's size, rounded up to 8KiB as LXD rounds it
        pool.create_instance_from_image("vm2", fp, vtype=VM, size="20GiB")
        assert os.path.getsize(pool.instance_block_path("vm2")) == 20 * GiB
        pool.create_instance_from_image("vm3", fp, vtype=VM, size=100 * MiB + 1)
        assert os.path.getsize(pool.instance_block_path("vm3")) == 100 * MiB + 8192
        # smaller than the image: LXD's error, nothing made
        with pytest.raises(StorageError) as e:
            pool.create_instance_from_image("vm4", fp, vtype=VM, size="32MiB")
        assert str(e.value) == f"Source image size ({64 * MiB}) exceeds specified volume size ({32 * MiB})"
        assert not pool.has_instance("vm4", vtype=VM)
        # the pool's volume.size when the device has none
        pool.config["volume.size"] = "3GiB"
        try:
            pool.create_instance_from_image("vm5", fp, vtype=VM)
            assert os.path.getsize(pool.instance_block_path("vm5")) == 3 * GiB
            pool.config["volume.size"] = "16MiB"
            with pytest.raises(StorageError, match=r"exceeds specified volume size"):
                pool.create_instance_from_image("vm6", fp, vtype=VM)
        finally:
            del pool.config["volume.size"]
        for v in ("vm1", "vm2", "vm3", "vm5"):
            pool.delete_instance(v, vtype=VM)
    finally:
        pool.delete_image(fp)
    empty(pool)


def big_image(pool, tmp) -> None:
    """An image larger than the 10GiB default: the instance gets the image's size."""
    d = os.path.join(tmp, "big")
    os.makedirs(d)
    meta = fx.metadata_tarball(os.path.join(d, "meta.tar.gz"))
    disk = os.path.join(d, "big.qcow2")
    import subprocess
    subprocess.run(["qemu-img", "create", "-f", "qcow2", disk, "11G"], check=True, capture_output=True)
    pool.create_image(FP, lambda dest: import_vm_split(meta, disk, dest), vtype=VM)
    try:
        pool.create_instance_from_image("vm1", FP, vtype=VM)
        assert os.path.getsize(pool.instance_block_path("vm1")) == 11 * GiB
        assert fx.allocated(pool.instance_block_path("vm1")) < MiB
        pool.delete_instance("vm1", vtype=VM)
    finally:
        pool.delete_image(FP)
    empty(pool)


def empty_volume_and_grow(pool, tmp) -> None:
    path = pool.create_instance_empty("vm1", vtype=VM)
    try:
        disk = pool.instance_block_path("vm1")
        assert os.listdir(path) == ["root.img"] and os.path.getsize(disk) == 10 * GiB
        assert fx.allocated(disk) < MiB
        assert pool.grow_instance_disk("vm1", 12 * GiB) is True
        assert os.path.getsize(disk) == 12 * GiB and pool.instance_disk_size("vm1") == 12 * GiB
        assert pool.grow_instance_disk("vm1", 12 * GiB) is False
        assert pool.grow_instance_disk("vm1", 12 * GiB + 1) is True
        assert os.path.getsize(disk) == 12 * GiB + 8192
        with pytest.raises(StorageError) as e:
            pool.grow_instance_disk("vm1", 1 * GiB)
        assert str(e.value) == "Block volumes cannot be shrunk: Cannot be shrunk"
        assert os.path.getsize(disk) == 12 * GiB + 8192
        # with a size: that, else the pool's volume.size
        pool.create_instance_empty("vm2", vtype=VM, size="1GiB")
        assert os.path.getsize(pool.instance_block_path("vm2")) == GiB
        pool.delete_instance("vm2", vtype=VM)
    finally:
        pool.delete_instance("vm1", vtype=VM)
    empty(pool)


def grow_moves_gpt(pool, tmp) -> None:
    fp = image(pool, tmp, 64)
    try:
        pool.create_instance_from_image("vm1", fp, vtype=VM, size="128MiB")
        disk = pool.instance_block_path("vm1")
        assert fx.gpt_at_end(disk)
        pool.grow_instance_disk("vm1", 256 * MiB)
        assert fx.gpt_at_end(disk) and fx.read_at(disk, fx.MARKER_AT, 14) == b"CORRAL-VM-DISK"
        pool.delete_instance("vm1", vtype=VM)
    finally:
        pool.delete_image(fp)
    empty(pool)


def snapshot_restore(pool, tmp) -> None:
    pool.create_instance_empty("vm1", vtype=VM)
    try:
        disk = pool.instance_block_path("vm1")
        cfg = pool.instance_path("vm1", vtype=VM)
        fx.write_at(disk, 5 * GiB, b"before")
        with open(os.path.join(cfg, "backup.yaml"), "w") as f:
            f.write("name: vm1\n")
        pool.create_instance_snapshot("vm1", "s0", vtype=VM)
        sdisk = pool.instance_block_path("vm1", "s0")
        assert sdisk != disk and os.path.getsize(sdisk) == 10 * GiB and fx.allocated(sdisk) < MiB
        assert fx.read_at(sdisk, 5 * GiB, 6) == b"before"
        assert os.path.isfile(os.path.join(pool.instance_path("vm1", "s0", vtype=VM), "backup.yaml"))
        assert pool.has_instance_snapshots("vm1", vtype=VM)
        assert pool.snapshot_names(pool.instance_volume("vm1", vtype=VM)) == ["s0"]
        fx.write_at(disk, 5 * GiB, b"after!")
        pool.grow_instance_disk("vm1", 11 * GiB)
        pool.restore_instance("vm1", "s0", vtype=VM)
        disk = pool.instance_block_path("vm1")
        assert fx.read_at(disk, 5 * GiB, 6) == b"before" and os.path.getsize(disk) == 10 * GiB
        assert fx.allocated(disk) < MiB
        pool.rename_instance_snapshot("vm1", "s0", "s1", vtype=VM)
        assert pool.snapshot_names(pool.instance_volume("vm1", vtype=VM)) == ["s1"]
        pool.delete_instance_snapshot("vm1", "s1", vtype=VM)
        assert not pool.has_instance_snapshots("vm1", vtype=VM)
    finally:
        pool.delete_instance("vm1", vtype=VM)
    empty(pool)


def copy_keeps_snapshots(pool, tmp, other=None) -> None:
    """A copy (into `other`, another pool, when given) with the source's snapshots, sparse."""
    dst = other or pool
    pool.create_instance_empty("vm1", vtype=VM)
    try:
        disk = pool.instance_block_path("vm1")
        fx.write_at(disk, GiB, b"snap0")
        pool.create_instance_snapshot("vm1", "s0", vtype=VM)
        fx.write_at(disk, GiB, b"live!")
        dst.create_instance_from_copy("vm2", pool, "vm1", None, ["s0"], vtype=VM)
        assert dst.snapshot_names(dst.instance_volume("vm2", vtype=VM)) == ["s0"]
        for snap, data in ((None, b"live!"), ("s0", b"snap0")):
            d2 = dst.instance_block_path("vm2", snap)
            assert fx.read_at(d2, GiB, 5) == data
            assert os.path.getsize(d2) == 10 * GiB and fx.allocated(d2) < MiB
        # a copy of a snapshot alone
        dst.create_instance_from_copy("vm3", pool, "vm1", "s0", vtype=VM)
        assert fx.read_at(dst.instance_block_path("vm3"), GiB, 5) == b"snap0"
        assert not dst.has_instance_snapshots("vm3", vtype=VM)
        # a refresh brings the new snapshot and the live disk
        pool.create_instance_snapshot("vm1", "s1", vtype=VM)
        fx.write_at(disk, GiB, b"later")
        dst.refresh_instance("vm2", pool, "vm1", ["s0", "s1"], vtype=VM)
        assert dst.snapshot_names(dst.instance_volume("vm2", vtype=VM)) == ["s0", "s1"]
        assert fx.read_at(dst.instance_block_path("vm2"), GiB, 5) == b"later"
        assert fx.read_at(dst.instance_block_path("vm2", "s1"), GiB, 5) == b"live!"
        # the same name again: refused, the existing one untouched
        with pytest.raises(StorageError):
            dst.create_instance_from_copy("vm2", pool, "vm1", None, ["s0"], vtype=VM)
        assert fx.read_at(dst.instance_block_path("vm2"), GiB, 5) == b"later"
        for v in ("vm2", "vm3"):
            dst.delete_instance(v, vtype=VM)
    finally:
        pool.delete_instance("vm1", vtype=VM)
    empty(pool)
    empty(dst)


def rename_and_delete(pool, tmp) -> None:
    pool.create_instance_empty("vm1", vtype=VM)
    pool.create_instance_snapshot("vm1", "s0", vtype=VM)
    try:
        pool.rename_instance("vm1", "vm9", vtype=VM)
        assert kinds(pool)["virtual-machines"] == ["vm9"] and kinds(pool)["virtual-machines-snapshots"] == ["vm9"]
        assert pool.snapshot_names(pool.instance_volume("vm9", vtype=VM)) == ["s0"]
        assert os.path.getsize(pool.instance_block_path("vm9", "s0")) == 10 * GiB
        pool.create_instance_empty("vm1", vtype=VM)
        with pytest.raises(StorageError):
            pool.rename_instance("vm9", "vm1", vtype=VM)
        assert kinds(pool)["virtual-machines"] == ["vm1", "vm9"]
        pool.delete_instance("vm1", vtype=VM)
    finally:
        pool.delete_instance("vm9", vtype=VM)
    empty(pool)


def backup_roundtrip(pool, tmp) -> None:
    pool.create_instance_empty("vm1", vtype=VM)
    try:
        disk = pool.instance_block_path("vm1")
        fx.write_at(disk, 4096, b"boot")
        fx.write_at(disk, 9 * GiB, b"snapshot")
        with open(os.path.join(pool.instance_path("vm1", vtype=VM), "metadata.yaml"), "w") as f:
            f.write("architecture: x86_64\n")
        pool.create_instance_snapshot("vm1", "s0", vtype=VM)
        fx.write_at(disk, 9 * GiB, b"live-vm!")
        pool.grow_instance_disk("vm1", 11 * GiB)
        dirs, blocks = backup_sources(pool, "vm1", ["s0"])
        assert [d for d, _ in dirs] == [f"{SNAPSHOTS}/s0", PREFIX]
        assert [b for b, _ in blocks] == [f"{SNAPSHOTS}/s0.img", f"{PREFIX}.img"]
        tar = os.path.join(tmp, "vm1.tar.gz")
        write_backup(tar, tar + ".json", {"name": "vm1", "type": VM, "snapshots": ["s0"]}, dirs, "gz", {},
                     files={f"{PREFIX}/backup.yaml": b"name: vm1\n"}, blocks=blocks)
        assert os.path.getsize(tar) < MiB   # two sparse 10GiB+ disks
        with tarfile.open(tar) as tf:
            names = {m.name: m for m in tf.getmembers()}
        assert f"{PREFIX}/root.img" not in names and f"{SNAPSHOTS}/s0/root.img" not in names
        assert names[f"{PREFIX}.img"].size == 11 * GiB and names[f"{SNAPSHOTS}/s0.img"].size == 10 * GiB
        assert f"{PREFIX}/backup.yaml" in names and f"{PREFIX}/metadata.yaml" in names
        with BackupTarball(tar) as bt:
            restore_backup(pool, "vm2", bt, ["s0"])
        d2 = pool.instance_block_path("vm2")
        assert os.path.getsize(d2) == 11 * GiB and fx.allocated(d2) < MiB
        assert fx.read_at(d2, 4096, 4) == b"boot" and fx.read_at(d2, 9 * GiB, 8) == b"live-vm!"
        s2 = pool.instance_block_path("vm2", "s0")
        assert os.path.getsize(s2) == 10 * GiB and fx.read_at(s2, 9 * GiB, 8) == b"snapshot"
        assert sorted(os.listdir(pool.instance_path("vm2", vtype=VM))) == ["backup.yaml", "metadata.yaml", "root.img"]
        # a backup without a snapshot's disk: refused before anything is made
        with BackupTarball(tar) as bt:
            with pytest.raises(BadRequest, match=r"no backup/virtual-machine-snapshots/s9"):
                restore_backup(pool, "vm3", bt, ["s9"])
        assert not pool.has_instance("vm3", vtype=VM)
        # the volume exists already: refused, it stays as it was
        with BackupTarball(tar) as bt:
            with pytest.raises(StorageError):
                restore_backup(pool, "vm2", bt, [])
        assert fx.read_at(pool.instance_block_path("vm2"), 9 * GiB, 8) == b"live-vm!"
        pool.delete_instance("vm2", vtype=VM)
    finally:
        pool.delete_instance("vm1", vtype=VM)
    empty(pool)


def container_volumes_untouched(pool, tmp) -> None:
    """The container methods as they were: a VM volume of the same name is another volume."""
    pool.create_instance_empty("x1")
    pool.create_instance_empty("x1", vtype=VM)
    try:
        assert os.path.isdir(os.path.join(pool.instance_path("x1"), "rootfs"))
        assert pool.instance_path("x1") != pool.instance_path("x1", vtype=VM)
        assert pool.instance_volume_names() == ["x1"] and pool.instance_volume_names(vtype=VM) == ["x1"]
        pool.delete_instance("x1")
        assert pool.has_instance("x1", vtype=VM)
    finally:
        pool.delete_instance("x1")
        pool.delete_instance("x1", vtype=VM)
    empty(pool)


SCENARIOS = [image_volume, from_image_sizes, big_image, empty_volume_and_grow, grow_moves_gpt, snapshot_restore,
             copy_keeps_snapshots, rename_and_delete, backup_roundtrip, container_volumes_untouched]
