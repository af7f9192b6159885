"""Busybox-based images for the simplestreams tests and the copy bench: unified or split (metadata
tarball + squashfs or tarball rootfs), optionally carrying an incompressible payload (random bytes in
rootfs/payload.bin) so that their size is what goes over the wire."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile

from corral.cli.busybox import build_busybox_image

MIB = 1 << 20


def _payload(tar: tarfile.TarFile, name: str, mib: int) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = mib * MIB, 0o644, 1700000000

    class Random(io.RawIOBase):
        left = ti.size

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), self.left)
            b[:n] = os.urandom(n)
            self.left -= n
            return n
    tar.addfile(ti, io.BufferedReader(Random(), 1 << 20))


def unified(dest: str, description: str, payload_mib: int = 0) -> str:
    """An uncompressed unified tarball (a tarball of random bytes would not compress anyway)."""
    os.makedirs(dest, exist_ok=True)
    src = build_busybox_image(tempfile.mkdtemp(dir=dest), description=description)
    out = os.path.join(dest, "image.tar")
    with tarfile.open(src, "r:gz") as tin, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tout:
        for m in tin:
            tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
        if payload_mib:
            _payload(tout, "rootfs/payload.bin", payload_mib)
    shutil.rmtree(os.path.dirname(src))
    return out


def split(dest: str, description: str, payload_mib: int = 0, squashfs: bool = True) -> tuple[str, str]:
    """(metadata tarball, rootfs): a squashfs made by mksquashfs, or a tarball."""
    os.makedirs(dest, exist_ok=True)
    src = build_busybox_image(tempfile.mkdtemp(dir=dest), description=description)
    meta = os.path.join(dest, "lxd.tar")
    root_tar = os.path.join(dest, "rootfs.tar")
    with tarfile.open(src, "r:gz") as tin, tarfile.open(meta, "w", format=tarfile.GNU_FORMAT) as tmeta, \
            tarfile.open(root_tar, "w", format=tarfile.GNU_FORMAT) as troot:
        for m in tin:
            parts = m.name.lstrip("./").split("/")
            if parts[0] == "rootfs":
                if len(parts) == 1:
                    continue
                m.name = "/".join(parts[1:])
                troot.addfile(m, tin.extractfile(m) if m.isreg() else None)
            else:
                tmeta.addfile(m, tin.extractfile(m) if m.isreg() else None)
        if payload_mib:
            _payload(troot, "payload.bin", payload_mib)
    shutil.rmtree(os.path.dirname(src))
    if not squashfs:
        return meta, root_tar
    tree = tempfile.mkdtemp(dir=dest)
    try:
        subprocess.run(["tar", "-xf", root_tar, "-C", tree, "--numeric-owner"], check=True)
        sq = os.path.join(dest, "rootfs.squashfs")
        subprocess.run(["mksquashfs", tree, sq, "-noappend", "-quiet", "-no-progress", "-comp", "gzip"],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(tree)
        os.unlink(root_tar)
    return meta, sq
