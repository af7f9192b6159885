"""Virtual-machine images, as LXD has them: a metadata tarball (metadata.yaml, templates/) with a
disk image (`rootfs.img`), either split in two files (the upload's second part is named
`rootfs.img` instead of `rootfs`; the disk must be qcow2, as LXD 5.0 has it: it refuses a raw one
with "Unsupported compression") or in one tarball holding metadata.yaml and rootfs.img (qcow2 or
raw).

They are kept in the image store as they arrive ($CORRAL_DIR/images/<fp>, and <fp>.rootfs for the
disk of a split image) and never unpacked as a container root file system. Checking one reads its
metadata.yaml and asks `qemu-img info` about the disk: qcow2 or raw, and self-contained (a qcow2
naming a backing file or an external data file would let an image read host files when it is
converted). write_disk() gives the storage side the disk as a raw or qcow2 file."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile

from corral.image import store
from corral.image.formats import detect_format
from corral.image.unpack import CHUNK, READ_ERRORS, Budget, ImageError, invalid, open_tar, tool

VM = "virtual-machine"
CONTAINER = "container"
DISK_FORMATS = ("qcow2", "raw")
QCOW2_MAGIC = b"QFI\xfb"
QEMU_IMG_TIMEOUT = 60


def _name(member: tarfile.TarInfo) -> tuple[str, ...]:
    return tuple(p for p in member.name.split("/") if p not in ("", "."))


def unified_type(path: str, budget: Budget | None = None) -> str:
    """"virtual-machine" when the unified tarball holds rootfs.img, else "container" (LXD reads the
    entries until it has seen metadata.yaml and the root, rootfs/ or rootfs.img). An unreadable
    file is "container": the container importer says what is wrong with it."""
    if detect_format(path) == "squashfs":
        return CONTAINER
    meta, kind = False, None
    try:
        with open_tar(path, detect_format(path), budget or Budget.unlimited()) as tar:
            for m in tar:
                parts = _name(m)
                if parts == ("metadata.yaml",):
                    meta = True
                elif parts == ("rootfs.img",) and m.isreg():
                    kind = VM
                elif parts[:1] == ("rootfs",):
                    kind = kind or CONTAINER
                tar.members.clear()
                if meta and kind:
                    raise _Stop()
    except _Stop:
        pass
    except (ImageError, *READ_ERRORS):
        return CONTAINER
    return kind or CONTAINER


class _Stop(Exception):
    """Leaves open_tar early (it checks the rest of the stream only on a normal exit)."""


def _read_tar(path: str, budget: Budget, want_disk: str | None = None) -> tuple[bytes, bool]:
    """metadata.yaml of a tarball; with want_disk, rootfs.img is written to that path. Returns
    (metadata.yaml, whether rootfs.img was there)."""
    meta = None
    disk = False
    with open_tar(path, detect_format(path), budget) as tar:
        while True:
            try:
                m = tar.next()
            except READ_ERRORS as e:
                raise invalid(e) from None
            if m is None:
                break
            parts = _name(m)
            if ".." in parts:
                raise ImageError(f"Invalid image tarball: '..' in entry {m.name!r}")
            if parts == ("metadata.yaml",):
                if not m.isreg():
                    raise ImageError("Invalid image: metadata.yaml is not a regular file")
                if m.size > store.MAX_METADATA_SIZE:
                    raise ImageError("Invalid image: metadata.yaml is too large")
                f = tar.extractfile(m)
                meta = f.read() if f is not None else b""
            elif parts == ("rootfs.img",):
                if not m.isreg():
                    raise ImageError("Invalid image: rootfs.img is not a regular file")
                disk = True
                if want_disk:
                    budget.ensure(m.size)
                    src = tar.extractfile(m)
                    with open(want_disk, "xb") as out:
                        while src is not None and (chunk := src.read(CHUNK)):
                            budget.charge(len(chunk))
                            out.write(chunk)
            elif parts[:1] == ("rootfs",):
                raise ImageError("Invalid image: a virtual-machine image holds rootfs.img, not a rootfs/ tree")
            tar.members.clear()
    if meta is None:
        raise ImageError("Invalid image: missing metadata.yaml")
    return meta, disk


def check_disk(path: str) -> dict:
    """`qemu-img info` of a VM image's disk: its format (qcow2 or raw) and virtual size. A qcow2
    with a backing file or an external data file is refused."""
    try:
        cp = subprocess.run([tool("qemu-img"), "info", "--output=json", path], capture_output=True,
                            text=True, timeout=QEMU_IMG_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ImageError("Invalid image: qemu-img info took too long on its disk") from None
    if cp.returncode != 0:
        why = (cp.stderr.strip().splitlines() or ["unreadable"])[-1].replace(path, "rootfs.img")
        raise ImageError(f"Invalid image: its disk cannot be read: {why}")
    try:
        info = json.loads(cp.stdout)
    except ValueError:
        raise ImageError("Invalid image: qemu-img info gave no answer about its disk") from None
    fmt = info.get("format")
    if fmt not in DISK_FORMATS:
        raise ImageError(f"Invalid image: its disk is {fmt!r}, not qcow2 or raw")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImageError("Invalid image: its qcow2 disk names a backing file")
    data_file = ((info.get("format-specific") or {}).get("data") or {}).get("data-file")
    if data_file:
        raise ImageError("Invalid image: its qcow2 disk names an external data file")
    size = info.get("virtual-size")
    if not isinstance(size, int) or size <= 0:
        raise ImageError("Invalid image: its disk has no size")
    return {"format": fmt, "virtual_size": size}


def _info(meta_yaml: bytes, fp: str, paths: list[str], filename: str) -> store.ImageInfo:
    meta = store.parse_metadata(meta_yaml)
    return store.ImageInfo(fingerprint=fp, size=sum(os.path.getsize(p) for p in paths),
                           architecture=meta["architecture"], created_at=store.rfc3339(meta["creation_date"]),
                           expires_at=store.rfc3339(meta["expiry_date"]), properties=meta["properties"],
                           templates=meta["templates"], filename=filename, type=VM)


def inspect_split(meta_path: str, disk_path: str, *, fingerprint: str | None = None, filename: str = "",
                  budget: Budget | None = None) -> store.ImageInfo:
    """Check a split VM image (metadata tarball + disk) without unpacking anything."""
    meta, disk = _read_tar(meta_path, budget or Budget.unlimited())
    if disk:
        raise ImageError("Invalid image: the metadata tarball of a split image holds rootfs.img")
    with open(disk_path, "rb") as f:
        if f.read(4) != QCOW2_MAGIC:   # LXD 5.0 takes a split image's rootfs.img as qcow2 only
            raise ImageError("Unsupported compression")
    check_disk(disk_path)
    fp = fingerprint or store.fingerprint([meta_path, disk_path])
    return _info(meta, fp, [meta_path, disk_path], filename)


def inspect_unified(path: str, workdir: str, *, fingerprint: str | None = None, filename: str = "",
                    budget: Budget | None = None) -> store.ImageInfo:
    """Check a unified VM image (one tarball: metadata.yaml + rootfs.img); its disk is copied out
    into `workdir` for qemu-img and removed again."""
    disk = os.path.join(workdir, "rootfs.img")
    try:
        meta, has_disk = _read_tar(path, budget or Budget.unlimited(), want_disk=disk)
        if not has_disk:
            raise ImageError("Invalid image: missing rootfs.img")
        check_disk(disk)
    finally:
        if os.path.lexists(disk):
            os.unlink(disk)
    fp = fingerprint or store.fingerprint([path])
    return _info(meta, fp, [path], filename)


def write_disk(meta_path: str, rootfs_path: str | None, dest: str, fmt: str = "raw",
               budget: Budget | None = None) -> None:
    """The VM image's disk written to `dest` as `fmt` (raw or qcow2), from the files in the image
    store (`rootfs_path` None: a unified tarball). For the storage side: an image volume, or a VM's
    root disk made straight from the image."""
    if fmt not in DISK_FORMATS:
        raise ImageError(f"Unknown disk format {fmt!r}")
    tmp = None
    src = rootfs_path
    try:
        if src is None:
            tmp = dest + ".rootfs.img"
            _read_tar(meta_path, budget or Budget.unlimited(), want_disk=tmp)
            src = tmp
        info = check_disk(src)
        if info["format"] == fmt and fmt == "raw":
            shutil.copyfile(src, dest)
            return
        cp = subprocess.run([tool("qemu-img"), "convert", "-f", info["format"], "-O", fmt, src, dest],
                            capture_output=True, text=True)
        if cp.returncode != 0:
            raise ImageError(f"Failed converting the image's disk: {cp.stderr.strip()[-400:]}")
    finally:
        if tmp and os.path.lexists(tmp):
            os.unlink(tmp)
