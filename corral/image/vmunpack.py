"""Unpacking a virtual-machine image for a storage pool (LXD's VM image volume): the metadata
tarball's metadata.yaml and templates/ (checked as a container image's are), and the image's disk
(`<fingerprint>.rootfs` in the image store: qcow2, or raw) converted to a raw, sparse `root.img`
beside them. What `Pool.create_image(fp, unpack, vtype="virtual-machine")` is handed:

    pool.create_image(fp, lambda d: import_vm_split(meta, rootfs, d, budget=budget), vtype=VM)

The disk is opened only as the format its first bytes say (never probed by qemu-img), and a qcow2
with a backing file or an external data file is refused (corral/storage/vmdisk.py).
"""
from __future__ import annotations

import os
import stat

from corral.image import store
from corral.image.extract import Unpacker
from corral.image.formats import detect_format, fingerprint
from corral.image.unpack import Budget, ImageError
from corral.storage import vmdisk

DISK = "root.img"


def import_vm_split(meta_path: str, disk_path: str, dest_dir: str, *, filename: str = "",
                    budget: Budget | None = None) -> store.ImageInfo:
    """Unpack a VM image into `dest_dir` (which must not exist): metadata.yaml, templates/,
    root.img (raw). The disk's allocated size counts against `budget` like unpacked files do."""
    _check_disk(disk_path)
    fp = fingerprint([meta_path, disk_path])
    with store._staging(dest_dir) as tmp:
        unpacker = Unpacker(tmp, False, budget)
        unpacker.extract_tar(meta_path, prefix=(), metadata_only=True)
        unpacker.finish()
        if unpacker.meta_rootfs:
            raise ImageError("Invalid image: the metadata tarball of a virtual-machine image has rootfs/ entries")
        if os.path.lexists(os.path.join(tmp, DISK)):
            raise ImageError(f"Invalid image: the metadata tarball of a virtual-machine image has a {DISK} entry")
        meta = _metadata(tmp)
        info = vmdisk.disk_info(disk_path)
        unpacker.budget.ensure(int(info.get("actual-size") or 0))
        vmdisk.convert_to_raw(disk_path, os.path.join(tmp, DISK), info)
        unpacker.budget.charge(vmdisk.allocated(os.path.join(tmp, DISK)))
    return store.ImageInfo(
        fingerprint=fp, size=sum(os.path.getsize(p) for p in (meta_path, disk_path)),
        architecture=meta["architecture"], created_at=store.rfc3339(meta["creation_date"]),
        expires_at=store.rfc3339(meta["expiry_date"]), properties=meta["properties"],
        templates=meta["templates"], filename=filename, type="virtual-machine")


def _check_disk(path: str) -> None:
    """A container image's rootfs (a tarball, compressed or not, or a squashfs) is no VM disk."""
    if not os.path.isfile(path):
        raise ImageError("Invalid image: a virtual-machine image needs its disk (rootfs.img)")
    with open(path, "rb") as f:
        head = f.read(512)
    if detect_format(path) != "tar" or head[257:262] == b"ustar":
        raise ImageError("Invalid image: its rootfs is a tarball or a squashfs, not a virtual-machine disk "
                         "(qcow2 or raw)")


def _metadata(root: str) -> dict:
    path = os.path.join(root, "metadata.yaml")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ImageError("Invalid image: missing metadata.yaml") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("Invalid image: metadata.yaml is not a regular file")
    if st.st_size > store.MAX_METADATA_SIZE:
        raise ImageError("Invalid image: metadata.yaml is too large")
    templates = os.path.join(root, "templates")
    if os.path.lexists(templates) and (os.path.islink(templates) or not os.path.isdir(templates)):
        raise ImageError("Invalid image: templates is not a directory")
    with open(path, "rb") as f:
        return store.parse_metadata(f.read())


def import_vm_unified(tarball: str, dest_dir: str, *, filename: str = "",
                      budget: Budget | None = None) -> store.ImageInfo:
    """A unified VM image (one tarball: metadata.yaml, templates/, rootfs.img, as `lxc publish` of a VM
    writes it): its disk taken out beside `dest_dir`, then unpacked as a split image's."""
    import shutil
    import subprocess
    import tempfile
    work = tempfile.mkdtemp(prefix=".vmdisk-", dir=os.path.dirname(os.path.abspath(dest_dir)))
    try:
        for member in ("rootfs.img", "./rootfs.img"):
            r = subprocess.run(["tar", "--no-same-owner", "--no-same-permissions", "-xf", tarball, "-C", work,
                                member], capture_output=True, text=True)
            if r.returncode == 0:
                break
        disk = os.path.join(work, "rootfs.img")
        if not os.path.isfile(disk) or os.path.islink(disk):
            raise ImageError("Invalid image: a virtual-machine image needs its disk (rootfs.img)")
        info = import_vm_split(tarball, disk, dest_dir, filename=filename, budget=budget)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info.fingerprint = fingerprint([tarball])
    info.size = os.path.getsize(tarball)
    return info
