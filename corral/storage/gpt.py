"""The backup GPT of a grown disk moved to its new end (what LXD does with `sgdisk --move-second-header`
after it grows a VM's root disk), so that the guest sees a valid partition table whose free space
reaches the end of the disk (and can grow its last partition into it).

Only a disk whose primary GPT header is valid is touched (its CRC checked first); anything else (no
partition table, an MBR-only disk, a damaged header) is left as it is. 512-byte sectors (QEMU's
default logical block size for a raw file).
"""
from __future__ import annotations

import os
import struct
import zlib

SECTOR = 512
SIGNATURE = b"EFI PART"
# signature, revision, header size, header crc, reserved, current lba, backup lba, first usable,
# last usable, disk guid, entries lba, number of entries, entry size, entries crc
_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")


def _crc(header: bytes, size: int) -> int:
    return zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:size]) & 0xFFFFFFFF


def _pack(fields: list, raw: bytes) -> bytes:
    """The header with `fields`, its CRC recomputed (bytes past the struct, up to its size, kept)."""
    size = fields[2]
    fields = list(fields)
    fields[3] = 0
    body = _HEADER.pack(*fields) + raw[_HEADER.size:size]
    fields[3] = _crc(body, size)
    return _HEADER.pack(*fields) + raw[_HEADER.size:size]


def move_backup_header(path: str) -> bool:
    """Rewrite the backup GPT (entries and header) at the end of the disk file `path` and extend the
    last usable sector to just before it; the primary header points at it and the protective MBR
    covers the whole disk. True when something was changed."""
    with open(path, "r+b") as f:
        f.seek(0, os.SEEK_END)
        sectors = f.tell() // SECTOR
        if sectors < 64:
            return False
        f.seek(SECTOR)
        raw = f.read(SECTOR)
        if len(raw) < _HEADER.size or not raw.startswith(SIGNATURE):
            return False
        fields = list(_HEADER.unpack_from(raw))
        size = fields[2]
        if not _HEADER.size <= size <= SECTOR or fields[3] != _crc(raw, size) or fields[5] != 1:
            return False
        old_backup, entries_lba, count, entry_size = fields[6], fields[10], fields[11], fields[12]
        last = sectors - 1
        if old_backup == last:
            return False
        table_bytes = count * entry_size
        if not 0 < table_bytes <= 1 << 20:
            return False
        table_sectors = -(-table_bytes // SECTOR)
        f.seek(entries_lba * SECTOR)
        table = f.read(table_bytes)
        if len(table) != table_bytes or zlib.crc32(table) & 0xFFFFFFFF != fields[13]:
            return False
        backup_entries = last - table_sectors
        if backup_entries <= fields[8]:
            return False   # a disk smaller than its partitions: not ours to fix
        # the new backup structures
        f.seek(backup_entries * SECTOR)
        f.write(table.ljust(table_sectors * SECTOR, b"\0"))
        backup = list(fields)
        backup[5], backup[6], backup[10] = last, 1, backup_entries
        backup[8] = backup_entries - 1
        f.seek(last * SECTOR)
        f.write(_pack(backup, raw).ljust(SECTOR, b"\0"))
        # the primary header points at them; the old backup header (past the old last usable
        # sector, so in no partition) is cleared
        primary = list(fields)
        primary[6], primary[8] = last, backup_entries - 1
        f.seek(SECTOR)
        f.write(_pack(primary, raw))
        if 0 < old_backup < backup_entries:
            f.seek(old_backup * SECTOR)
            f.write(b"\0" * SECTOR)
        _protective_mbr(f, sectors)
    return True


def _protective_mbr(f, sectors: int) -> None:
    f.seek(0)
    mbr = bytearray(f.read(SECTOR))
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa" or mbr[446 + 4] != 0xEE:
        return
    struct.pack_into("<I", mbr, 446 + 12, min(sectors - 1, 0xFFFFFFFF))
    f.seek(0)
    f.write(bytes(mbr))
