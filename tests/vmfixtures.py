"""Small VM images for storage tests, made as LXD's split VM images are: a metadata tarball
(metadata.yaml with architecture and creation date, templates/) and a disk (`qemu-img` qcow2, or
raw) holding a GPT (sgdisk) and a marker at a known offset; and checks on disks made from them."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

MiB = 2**20
GiB = 2**30
MARKER_AT = 20 * MiB
TOOLS = ("qemu-img", "sgdisk", "lsattr")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def metadata_tarball(path: str, *, templates: bool = True, extra: dict[str, bytes] | None = None) -> str:
    meta = (b"architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  os: busybox\n"
            b"  description: vm test image\n")
    if templates:
        meta += b"templates:\n  /etc/hostname:\n    when: [create, copy]\n    template: hostname.tpl\n"
    with tarfile.open(path, "w:gz") as tf:
        entries = {"metadata.yaml": meta, **({"templates/hostname.tpl": b"{{ container.name }}\n"} if templates else {}),
                   **(extra or {})}
        if templates:
            ti = tarfile.TarInfo("templates")
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(ti)
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))
    return path


def disk(path: str, size_mib: int = 64, fmt: str = "qcow2", marker: bytes = b"CORRAL-VM-DISK") -> str:
    """A disk of `size_mib` MiB with a GPT (an ESP and a Linux partition) and `marker` at MARKER_AT."""
    raw = path + ".raw" if fmt != "raw" else path
    with open(raw, "wb") as f:
        f.truncate(size_mib * MiB)
    subprocess.run(["sgdisk", "-n1:2048:+8M", "-t1:ef00", "-n2:0:0", "-t2:8300", raw], check=True,
                   capture_output=True)
    with open(raw, "r+b") as f:
        f.seek(MARKER_AT)
        f.write(marker)
    if fmt != "raw":
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, raw, path], check=True, capture_output=True)
        os.unlink(raw)
    return path


def vm_image(directory: str, size_mib: int = 64, fmt: str = "qcow2", marker: bytes = b"CORRAL-VM-DISK") -> tuple[str, str]:
    """(metadata tarball, disk) as the image store keeps them: $CORRAL_DIR/images/<fp>, <fp>.rootfs."""
    os.makedirs(directory, exist_ok=True)
    return (metadata_tarball(os.path.join(directory, "meta.tar.gz")),
            disk(os.path.join(directory, f"disk.{fmt}"), size_mib, fmt, marker))


def read_at(path: str, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


def write_at(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def allocated(path: str) -> int:
    return os.stat(path).st_blocks * 512


def gpt_at_end(path: str) -> bool:
    """sgdisk finds no problem (its backup header is at the disk's end and matches the primary)."""
    out = subprocess.run(["sgdisk", "-v", path], capture_output=True, text=True).stdout
    return "No problems found" in out


def nodatacow(path: str) -> bool:
    out = subprocess.run(["lsattr", "-d", path], capture_output=True, text=True).stdout.split()
    return bool(out) and "C" in out[0]
