"""Pieces of the VM test image builder (corral/image/vmbuild*.py) checked by other tools: the GPT by
util-linux (partx, through libblkid, which checks the header and entry CRCs), the initramfs cpio by
busybox cpio, module dependency order from real ELF objects made by gcc."""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import uuid

import pytest

from corral.image import vmbuild_disk as disk
from corral.image import vmbuild_kernel as kernel
from corral.image.vmbuild_disk import BuildError


@pytest.mark.skipif(not shutil.which("partx"), reason="util-linux partx is needed")
def test_gpt_read_by_libblkid(tmp_path):
    path = tmp_path / "disk.img"
    size = 8 << 20
    with open(path, "wb") as f:
        f.truncate(size)
    (ef, el), (rf, rl) = disk.layout(size, 2 << 20)
    assert ef == 2048 and el == 2048 + 4096 - 1 and rf == el + 1
    assert (rl - rf + 1) % 8 == 0 and rl <= size // 512 - 34
    esp, root = uuid.uuid4(), uuid.uuid4()
    disk.write_gpt(str(path), [
        {"first": ef, "last": el, "type": disk.ESP_TYPE, "guid": esp, "name": "EFI System"},
        {"first": rf, "last": rl, "type": disk.LINUX_ROOT_X86_64, "guid": root, "name": "root"}], uuid.uuid4())
    out = subprocess.run(["partx", "-g", "-o", "NR,START,END,TYPE,UUID,NAME", "--show", str(path)],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0].split() == ["1", str(ef), str(el), str(disk.ESP_TYPE), str(esp), "EFI", "System"]
    assert out[1].split() == ["2", str(rf), str(rl), str(disk.LINUX_ROOT_X86_64), str(root), "root"]
    # the root entry's name changed in the primary table only: libblkid refuses that table by its
    # CRC and reads the backup at the end of the disk, which must be whole
    with open(path, "r+b") as f:
        f.seek(2 * 512 + 128 + 56)
        f.write("XXXX".encode("utf-16-le"))
    again = subprocess.run(["partx", "-g", "-o", "NR,NAME", "--show", str(path)], capture_output=True,
                           text=True).stdout
    assert "root" in again and "XXXX" not in again, again


def test_gpt_partition_outside_the_disk_refused(tmp_path):
    path = tmp_path / "d.img"
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    with pytest.raises(BuildError, match="does not fit"):
        disk.write_gpt(str(path), [{"first": 2048, "last": 4096, "type": disk.ESP_TYPE, "guid": uuid.uuid4(),
                                    "name": "x"}], uuid.uuid4())


@pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox is needed")
def test_cpio_listed_by_busybox(tmp_path):
    c = disk.Cpio()
    c.dir("bin")
    c.file("bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
    c.symlink("bin/sh", "/bin/busybox")
    c.chardev("dev-console", 5, 1)
    c.file("odd", b"x" * 5)   # data padding to 4 bytes
    raw = gzip.decompress(c.finish())
    assert raw.startswith(b"070701")
    out = subprocess.run(["/bin/busybox", "cpio", "-t", "-v"], input=raw, capture_output=True, check=True).stdout
    lines = out.decode().splitlines()
    names = [line.split()[-1] if "->" not in line else line.split()[-3] for line in lines]
    assert names == ["bin", "bin/hello", "bin/sh", "dev-console", "odd"], lines
    assert lines[1].startswith("-rwxr-xr-x") and lines[2].startswith("lrwxrwxrwx") and "-> /bin/busybox" in lines[2]
    assert lines[3].startswith("crw-------")
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["/bin/busybox", "cpio", "-i", "-d"], input=raw, cwd=dest, capture_output=True)
    assert (dest / "bin/hello").read_bytes() == b"#!/bin/sh\necho hi\n" and (dest / "odd").read_bytes() == b"xxxxx"


def _ko(moddir, name: str, depends: str) -> None:
    src = f'const char modinfo[] __attribute__((section(".modinfo"))) = "name={name}\\0depends={depends}";\n'
    out = moddir / "kernel" / f"{name.replace('_', '-') if name == 'crc_t10dif' else name}.ko"
    subprocess.run(["gcc", "-c", "-x", "c", "-", "-o", str(out)], input=src.encode(), check=True)


@pytest.mark.skipif(not shutil.which("gcc"), reason="gcc is needed")
def test_module_order_from_modinfo(tmp_path):
    moddir = tmp_path / "6.1.0-test"
    (moddir / "kernel").mkdir(parents=True)
    (moddir / "modules.builtin").write_text("kernel/lib/builtin_one.ko\n")
    _ko(moddir, "virtio", "")
    _ko(moddir, "virtio_ring", "")
    _ko(moddir, "virtio_blk", "virtio,virtio_ring")
    _ko(moddir, "crc_t10dif", "builtin_one")        # file name crc-t10dif.ko, as in Debian's tree
    _ko(moddir, "sd_mod", "crc-t10dif,virtio")
    order = [os.path.basename(p) for p in kernel.select_modules(str(moddir), ("virtio_blk", "sd_mod"))]
    assert order == ["virtio.ko", "virtio_ring.ko", "virtio_blk.ko", "crc-t10dif.ko", "sd_mod.ko"]
    assert kernel.modinfo_depends(str(moddir / "kernel" / "sd_mod.ko")) == ["crc-t10dif", "virtio"]
    with pytest.raises(BuildError, match="nope not found"):
        kernel.select_modules(str(moddir), ("nope",))
    _ko(moddir, "loop_a", "loop_b")
    _ko(moddir, "loop_b", "loop_a")
    with pytest.raises(BuildError, match="cycle"):
        kernel.select_modules(str(moddir), ("loop_a",))
