"""The guest kernel of the VM test image: Debian's current linux-image-*-amd64, fetched with
`apt-get download` into the build cache and unpacked there with `dpkg-deb -x` (never installed on
the host), with only the modules the guest needs kept, in the order they must be loaded."""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass

from corral.image.vmbuild_disk import BuildError, run

META_PACKAGE = "linux-image-amd64"

# What the guest needs: virtio PCI devices (disk on virtio-blk or virtio-scsi, NIC, serial ports for
# the agent, entropy), ext4 (and the crc32c its metadata checksums use), the ACPI power button and
# the event device busybox acpid reads it from. Their dependencies come from each module's modinfo.
MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "virtio_net", "virtio_console",
           "virtio_rng", "crc32c_generic", "ext4", "button", "evdev")


@dataclass(frozen=True)
class Kernel:
    version: str          # e.g. 6.1.0-57-amd64
    package: str          # the .deb's file name
    sha256: str           # of the .deb
    vmlinuz: str
    modules: tuple[str, ...]   # paths of the kept .ko files, in load order


def resolve_package() -> str:
    """The versioned kernel package linux-image-amd64 depends on now (apt's view)."""
    cp = run(["apt-cache", "depends", META_PACKAGE])
    for line in cp.stdout.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+-amd64)\s*$", line)
        if m:
            return m.group(1)
    raise BuildError(f"apt-cache depends {META_PACKAGE} names no linux-image-*-amd64 "
                     "(run apt-get update first)")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fetch(cache: str, log=print) -> str:
    """The kernel .deb in `cache/debs`, downloaded if this version is not there yet. Without apt
    (offline, no lists) the newest .deb already cached is used."""
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    try:
        pkg = resolve_package()
    except BuildError:
        cached = sorted(glob.glob(os.path.join(debs, "linux-image-*-amd64_*.deb")))
        if cached:
            return cached[-1]
        raise
    have = sorted(glob.glob(os.path.join(debs, f"{pkg}_*.deb")))
    if have:
        return have[-1]
    log(f"Downloading {pkg}")
    argv = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", pkg]
    try:
        run(argv, cwd=debs)
    except BuildError:   # package lists older than the mirror: refresh them once
        log("apt-get download failed: running apt-get update")
        run(["apt-get", "update", "-qq"])
        pkg = resolve_package()
        run(argv[:-1] + [pkg], cwd=debs)
    have = sorted(glob.glob(os.path.join(debs, f"{pkg}_*.deb")))
    if not have:
        raise BuildError(f"apt-get download {pkg} left no .deb in {debs}")
    return have[-1]


def modinfo_depends(ko: str) -> list[str]:
    """The `depends=` of a module, read from its ELF .modinfo section."""
    with open(ko, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise BuildError(f"{ko} is not a 64-bit little-endian ELF module")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i: int) -> tuple[int, int, int]:
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, off, size
    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        if data[stroff + name:data.index(b"\0", stroff + name)] == b".modinfo":
            for field in data[off:off + size].split(b"\0"):
                if field.startswith(b"depends="):
                    return [d for d in field[8:].decode().split(",") if d]
            return []
    raise BuildError(f"{ko} has no .modinfo section")


def _norm(name: str) -> str:
    return name.replace("-", "_")


def select_modules(moddir: str, wanted: tuple[str, ...] = MODULES) -> list[str]:
    """Paths (under moddir) of `wanted` and their dependencies, each after what it depends on.
    A wanted module built into the kernel is skipped."""
    builtin = set()
    with open(os.path.join(moddir, "modules.builtin")) as f:
        for line in f:
            builtin.add(_norm(os.path.basename(line.strip())).removesuffix(".ko"))
    files = {}
    for root, _, names in os.walk(os.path.join(moddir, "kernel")):
        for n in names:
            if n.endswith(".ko"):
                files[_norm(n[:-3])] = os.path.join(root, n)
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        name = _norm(name)
        if state.get(name) == "done" or name in builtin:
            return
        if state.get(name) == "visiting":
            raise BuildError(f"module dependency cycle at {name}")
        if name not in files:
            raise BuildError(f"kernel module {name} not found in {moddir}")
        state[name] = "visiting"
        for dep in modinfo_depends(files[name]):
            visit(dep)
        state[name] = "done"
        order.append(files[name])
    for w in wanted:
        visit(w)
    return order


def prepare(cache: str, log=print) -> Kernel:
    """The kernel and the needed modules unpacked in `cache/kernel/<version>/` (reused when there)."""
    deb = fetch(cache, log)
    sha = _sha256(deb)
    m = re.match(r"linux-image-(\S+?-amd64)_", os.path.basename(deb))
    if not m:
        raise BuildError(f"unexpected kernel package name {os.path.basename(deb)}")
    version = m.group(1)
    dest = os.path.join(cache, "kernel", f"{version}-{sha[:12]}")
    manifest = os.path.join(dest, "modules.load")
    if not os.path.isfile(manifest):
        log(f"Unpacking {os.path.basename(deb)}")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".unpack-", dir=os.path.dirname(dest)) as tmp:
            x = os.path.join(tmp, "x")
            run(["dpkg-deb", "-x", deb, x])
            moddir = os.path.join(x, "lib", "modules", version)
            chosen = select_modules(moddir)
            stage = os.path.join(tmp, "out")
            os.makedirs(os.path.join(stage, "modules"))
            shutil.copy2(os.path.join(x, "boot", f"vmlinuz-{version}"), os.path.join(stage, "vmlinuz"))
            shutil.copy2(os.path.join(x, "boot", f"config-{version}"), os.path.join(stage, "config"))
            names = []
            for ko in chosen:
                names.append(os.path.basename(ko))
                shutil.copy2(ko, os.path.join(stage, "modules", names[-1]))
            with open(os.path.join(stage, "modules.load"), "w") as f:
                f.write("".join(n + "\n" for n in names))
            if os.path.exists(dest):
                shutil.rmtree(dest)
            os.rename(stage, dest)
    with open(manifest) as f:
        names = [n.strip() for n in f if n.strip()]
    return Kernel(version=version, package=os.path.basename(deb), sha256=sha,
                  vmlinuz=os.path.join(dest, "vmlinuz"),
                  modules=tuple(os.path.join(dest, "modules", n) for n in names))
