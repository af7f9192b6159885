"""Disk pieces of the VM test image, made without loop mounts or root-only tools: a GPT written
here, a FAT ESP (mkfs.vfat + mtools), an ext4 root (mkfs.ext4 -d), a newc cpio initramfs written
here, and the qcow2 conversion (qemu-img). Used by corral/image/vmbuild.py."""
from __future__ import annotations

import gzip
import os
import stat
import struct
import subprocess
import uuid
import zlib

SECTOR = 512
MIB = 1 << 20
ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
LINUX_ROOT_X86_64 = uuid.UUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")   # discoverable partitions spec
_ENTRIES = 128
_ENTRY_SIZE = 128
_ENTRY_SECTORS = _ENTRIES * _ENTRY_SIZE // SECTOR


class BuildError(RuntimeError):
    """A step of the VM image build failed (a tool missing or failing): the message says which."""


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, **kw)
    except FileNotFoundError:
        raise BuildError(f"{argv[0]} is not installed (needed to build the VM image)") from None
    if cp.returncode != 0:
        raise BuildError(f"{' '.join(argv[:3])}... failed: {(cp.stderr or cp.stdout).strip()[-800:]}")
    return cp


# --------------------------------------------------------------------------- GPT

def write_gpt(path: str, partitions: list[dict], disk_guid: uuid.UUID) -> None:
    """Write a protective MBR, the primary and the backup GPT into the file `path` (already sized).
    Each partition: {"first": lba, "last": lba, "type": UUID, "guid": UUID, "name": str}."""
    total = os.path.getsize(path) // SECTOR
    last_usable = total - 1 - _ENTRY_SECTORS - 1
    entries = bytearray(_ENTRIES * _ENTRY_SIZE)
    for i, p in enumerate(partitions):
        if not (2 + _ENTRY_SECTORS <= p["first"] <= p["last"] <= last_usable):
            raise BuildError(f"partition {i + 1} does not fit the disk")
        name = p["name"].encode("utf-16-le")[:72].ljust(72, b"\0")
        struct.pack_into("<16s16sQQQ72s", entries, i * _ENTRY_SIZE, p["type"].bytes_le, p["guid"].bytes_le,
                         p["first"], p["last"], 0, name)
    entries_crc = zlib.crc32(entries)

    def header(current: int, backup: int, entries_lba: int) -> bytes:
        fields = [b"EFI PART", 0x00010000, 92, 0, 0, current, backup, 2 + _ENTRY_SECTORS, last_usable,
                  disk_guid.bytes_le, entries_lba, _ENTRIES, _ENTRY_SIZE, entries_crc]
        raw = struct.pack("<8sIIIIQQQQ16sQIII", *fields)
        fields[3] = zlib.crc32(raw)
        return struct.pack("<8sIIIIQQQQ16sQIII", *fields).ljust(SECTOR, b"\0")

    mbr = bytearray(SECTOR)
    # one partition of type 0xEE covering the disk (capped at 2 TiB), as the UEFI spec asks
    struct.pack_into("<B3sB3sII", mbr, 446, 0, b"\x00\x02\x00", 0xEE, b"\xff\xff\xff", 1,
                     min(total - 1, 0xFFFFFFFF))
    mbr[510:512] = b"\x55\xaa"
    with open(path, "r+b") as f:
        f.write(mbr)
        f.write(header(1, total - 1, 2))
        f.write(entries)
        f.seek((total - 1 - _ENTRY_SECTORS) * SECTOR)
        f.write(entries)
        f.write(header(total - 1, 1, total - 1 - _ENTRY_SECTORS))


def layout(disk_size: int, esp_size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(first, last) LBAs of the ESP and of the root partition (1 MiB aligned, root to the end)."""
    total = disk_size // SECTOR
    esp_first = MIB // SECTOR
    esp_last = esp_first + esp_size // SECTOR - 1
    root_first = esp_last + 1
    last_usable = total - 1 - _ENTRY_SECTORS - 1
    root_last = root_first + ((last_usable - root_first + 1) // 8) * 8 - 1   # whole 4 KiB blocks
    return (esp_first, esp_last), (root_first, root_last)


# --------------------------------------------------------------------------- file systems

def make_esp(path: str, size: int, files: dict[str, str]) -> None:
    """A FAT file system image of `size` bytes at `path` holding `files` ({path on the ESP: host file})."""
    if os.path.exists(path):
        os.unlink(path)
    run(["mkfs.vfat", "-C", "-n", "CORRAL-ESP", "-i", "c0aa1000", path, str(size // 1024)])
    made = set()
    for dest in sorted(files):
        parts = dest.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in made:
                run(["mmd", "-i", path, "::/" + d])
                made.add(d)
        run(["mcopy", "-i", path, "-m", files[dest], "::/" + "/".join(parts)])


def make_ext4(path: str, size: int, tree: str, fs_uuid: uuid.UUID, label: str) -> None:
    """An ext4 file system image of `size` bytes at `path`, filled from the directory `tree`
    (owners and modes as they are there)."""
    if os.path.exists(path):
        os.unlink(path)
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": "1700000000", "MKE2FS_CONFIG": "/dev/null"}
    # MKE2FS_CONFIG=/dev/null: no site defaults, only the features named here (all known to the
    # guest's 6.1 kernel; metadata_csum needs its crc32c module)
    run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", label, "-U", str(fs_uuid), "-J", "size=4",
         "-O", "has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize,sparse_super,"
               "filetype,resize_inode,ext_attr,dir_index,large_file",
         "-E", "hash_seed=" + str(uuid.uuid5(fs_uuid, "hash")) + ",lazy_itable_init=0,lazy_journal_init=0",
         "-I", "256", "-d", tree, path, f"{size // 1024}k"], env=env)
    run(["e2fsck", "-n", "-f", path])


def assemble(disk: str, esp_img: str, root_img: str, disk_size: int, esp_size: int, *,
             disk_guid: uuid.UUID, esp_guid: uuid.UUID, root_guid: uuid.UUID) -> None:
    """A raw GPT disk of `disk_size` bytes with the ESP and root images in their partitions."""
    (ef, el), (rf, rl) = layout(disk_size, esp_size)
    if os.path.getsize(esp_img) > (el - ef + 1) * SECTOR or os.path.getsize(root_img) > (rl - rf + 1) * SECTOR:
        raise BuildError("a file system image is larger than its partition")
    with open(disk, "wb") as f:
        f.truncate(disk_size)
    write_gpt(disk, [
        {"first": ef, "last": el, "type": ESP_TYPE, "guid": esp_guid, "name": "EFI System"},
        {"first": rf, "last": rl, "type": LINUX_ROOT_X86_64, "guid": root_guid, "name": "root"},
    ], disk_guid)
    with open(disk, "r+b") as out:
        for src, first in ((esp_img, ef), (root_img, rf)):
            out.seek(first * SECTOR)
            with open(src, "rb") as f:
                while chunk := f.read(MIB):
                    if chunk.count(0) == len(chunk):
                        out.seek(len(chunk), os.SEEK_CUR)   # keep the file sparse
                    else:
                        out.write(chunk)


def make_uki(dest: str, stub: str, kernel: str, initrd: str, cmdline: str, os_release: str) -> None:
    """A unified kernel image: systemd's EFI stub with .osrel, .cmdline, .linux and .initrd sections
    (objcopy, as systemd documents for building one by hand)."""
    tmp = os.path.dirname(dest)
    osrel, cmd = os.path.join(tmp, "osrel"), os.path.join(tmp, "cmdline")
    with open(osrel, "w") as f:
        f.write(os_release)
    with open(cmd, "w") as f:
        f.write(cmdline)
    linux_at = 0x2000000
    initrd_at = linux_at + ((os.path.getsize(kernel) + MIB - 1) // MIB) * MIB
    argv = ["objcopy"]
    for name, path, vma in ((".osrel", osrel, 0x20000), (".cmdline", cmd, 0x30000), (".linux", kernel, linux_at),
                            (".initrd", initrd, initrd_at)):
        argv += ["--add-section", f"{name}={path}", "--change-section-vma", f"{name}={vma:#x}"]
    run(argv + [stub, dest])


def to_qcow2(raw: str, dest: str) -> None:
    tmp = dest + ".tmp"
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", raw, tmp])
    os.replace(tmp, dest)


# --------------------------------------------------------------------------- initramfs

class Cpio:
    """A newc ("070701") cpio archive written in memory: the Linux initramfs format."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nm = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nm), 0)
        self.ino += 1
        self.buf += b"070701" + b"".join(b"%08X" % v for v in fields) + nm
        self.buf += b"\0" * (-len(self.buf) % 4)
        self.buf += data
        self.buf += b"\0" * (-len(self.buf) % 4)

    def dir(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return gzip.compress(bytes(self.buf), compresslevel=9, mtime=0)
