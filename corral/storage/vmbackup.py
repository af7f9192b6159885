"""Backups of a VM's instance volume in LXD's tarball layout (genericVFSBackupVolume /
genericVFSBackupUnpack): the config directory as backup/virtual-machine/ (without its disk) and the
disk as backup/virtual-machine.img; each snapshot as backup/virtual-machine-snapshots/<snap>/ and
backup/virtual-machine-snapshots/<snap>.img (written before the volume, as LXD writes them).

The instance layer writes index.yaml and backup.yaml and records the instance; this module is the
volume's part, a pair:

    dirs, blocks = backup_sources(pool, vol, snapshots)
    write_backup(tar, meta, index, dirs, comp, record,
                 files={f"{PREFIX}/backup.yaml": ...}, blocks=blocks)      # corral/backup/tarball.py

    check_backup(bt, snapshots)          # before the import's operation: a 400, nothing made
    restore_backup(pool, vol, bt, snapshots)   # the volume and its snapshots, undone whole on failure

Disks are written sparse (a PAX sparse member) and restored sparse (holes and zero chunks are not
written), so a mostly empty 10GiB disk costs little either way.
"""
from __future__ import annotations

import os

from corral.backup.format import BackupTarball
from corral.errors import BadRequest
from corral.storage.drivers.base import BLOCK_FILE
from corral.storage.volume import VM

PREFIX = "backup/virtual-machine"
SNAPSHOTS = "backup/virtual-machine-snapshots"


def backup_sources(pool, vol: str, snapshots: list[str] | tuple[str, ...] = ()) -> \
        tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(dirs, blocks) of a VM volume and its `snapshots` for write_backup: the config directories
    (member name, directory) and the disks (member name, disk file)."""
    dirs, blocks = [], []
    for s in snapshots:
        dirs.append((f"{SNAPSHOTS}/{s}", pool.instance_path(vol, s, vtype=VM)))
        blocks.append((f"{SNAPSHOTS}/{s}.img", pool.instance_block_path(vol, s)))
    dirs.append((PREFIX, pool.instance_path(vol, vtype=VM)))
    blocks.append((f"{PREFIX}.img", pool.instance_block_path(vol)))
    return dirs, blocks


def check_backup(bt: BackupTarball, snapshots: list[str] | tuple[str, ...] = ()) -> None:
    """The tarball has the VM volume's members (and each snapshot's): BadRequest otherwise."""
    for prefix in [PREFIX] + [f"{SNAPSHOTS}/{s}" for s in snapshots]:
        if prefix not in bt.by_path and not any(m.path.startswith(prefix + "/") for m in bt.members):
            raise BadRequest(f"Invalid backup tarball: no {prefix}/")
        disk = bt.by_path.get(prefix + ".img")
        if disk is None or not disk.info.isreg():
            raise BadRequest(f"Invalid backup tarball: no {prefix}.img")


def _filler(bt: BackupTarball, prefix: str):
    def fill(path: str) -> None:
        # the config files (a root.img in the tree is not the disk: the disk is <prefix>.img)
        bt.extract(prefix, os.path.dirname(path), os.path.basename(path), skip={BLOCK_FILE})
        bt.extract_disk(prefix + ".img", os.path.join(path, BLOCK_FILE))
    return fill


def restore_backup(pool, vol: str, bt: BackupTarball, snapshots: list[str] | tuple[str, ...] = ()) -> None:
    """A new VM volume `vol` and its `snapshots` from the backup tarball (each disk of the size it
    had); nothing is left when it fails."""
    check_backup(bt, snapshots)
    pool.create_from_backup(pool.instance_volume(vol, vtype=VM), _filler(bt, PREFIX),
                            [(s, _filler(bt, f"{SNAPSHOTS}/{s}")) for s in snapshots])
