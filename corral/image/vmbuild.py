"""Build the small VM test image locally from Debian packages only: Debian's kernel (a few modules
kept), the host's static busybox (busybox-static) as userland, our guest agent when there is one,
and systemd's EFI stub (systemd-boot-efi) to make a unified kernel image (kernel, initramfs and
command line in one EFI binary: no boot menu, no loader entries). It boots under QEMU TCG with OVMF
in seconds.

    img = build_vm_image()            # cached: the same inputs give back the same files
    img.metadata, img.rootfs          # the LXD split VM image: metadata tarball + rootfs.img (qcow2)
    boot = direct_boot_files()        # the same kernel/initrd for QEMU -kernel/-initrd (no firmware)

The disk (GPT): an ESP (FAT: the UKI as EFI/BOOT/BOOTX64.EFI, the firmware's default boot path; it
was measured 1.4 s faster under TCG than systemd-boot loading the same kernel from a loader entry)
and an ext4 root partition (label corral-root) that the initramfs mounts and
switches to, so files written in the guest persist across reboots. The guest's init and scripts are
in vmbuild_guest.py.

Everything is kept in the build cache, /var/cache/corral/vm-build (CORRAL_VM_BUILD_CACHE): the
kernel .deb, its unpacked kernel and modules, and one directory per build named by a hash over all
the inputs (the kernel package, busybox, the agent, the loader and the builder's own source).
Server-side code: no CLI imports."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

import yaml

from corral.image import vmbuild_disk as disk
from corral.image import vmbuild_guest as guest
from corral.image import vmbuild_kernel as kernel
from corral.image.vmbuild_disk import BuildError

__all__ = ["BuildError", "VMImage", "DirectBoot", "build_vm_image", "direct_boot_files", "cache_dir",
           "agent_path"]

BUSYBOX = "/bin/busybox"
SYSTEMD_STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
OS_RELEASE = 'ID=corral\nNAME="Corral busybox VM"\n'
FORMAT = "corral-vm-1"     # bump to invalidate every cached build
DISK_SIZE = 128 << 20
ESP_SIZE = 32 << 20
ROOT_LABEL = "corral-root"
META_NAME = "metadata.tar.xz"
ROOTFS_NAME = "rootfs.img"


@dataclass(frozen=True)
class VMImage:
    metadata: str       # the metadata tarball (metadata.yaml, templates/)
    rootfs: str         # rootfs.img: the qcow2 disk
    kernel: str         # the kernel and initramfs on the disk's ESP, for a direct boot
    initrd: str
    cmdline: str
    build_id: str       # the hash over the build's inputs
    kernel_version: str
    agent: bool         # whether the guest agent is in the image


@dataclass(frozen=True)
class DirectBoot:
    kernel: str
    initrd: str
    cmdline: str        # root= names the ext4 partition of the image's disk: boot it with that disk
    rootfs: str


def cache_dir() -> str:
    return os.environ.get("CORRAL_VM_BUILD_CACHE") or "/var/cache/corral/vm-build"


def agent_path() -> str | None:
    """The guest agent binary to put in the image: CORRAL_VM_AGENT if set, else the agent's own
    build (corral.vmagent.agent_binary()) when that exists; None when there is none."""
    env = os.environ.get("CORRAL_VM_AGENT")
    if env:
        if not os.path.isfile(env):
            raise BuildError(f"CORRAL_VM_AGENT={env} is not a file")
        return env
    try:
        from corral import vmagent   # type: ignore[attr-defined]
        path = vmagent.agent_binary()
    except Exception:   # not built, or not there at all
        return None
    return path if path and os.path.isfile(path) else None


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_static(path: str) -> None:
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] != b"\x7fELF":
        raise BuildError(f"{path} is not an ELF binary")
    if b"/lib64/ld-linux" in head or b"/lib/ld-linux" in head:
        raise BuildError(f"{path} is dynamically linked: the guest has no libc (install busybox-static)")


@contextlib.contextmanager
def _locked(cache: str) -> Iterator[None]:
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _inputs_hash(k: kernel.Kernel, busybox: str, agent: str | None, loader: str) -> str:
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    parts = [FORMAT, k.sha256, _sha256(busybox), _sha256(agent) if agent else "no-agent", _sha256(loader)]
    for mod in ("vmbuild.py", "vmbuild_disk.py", "vmbuild_guest.py", "vmbuild_kernel.py"):
        parts.append(_sha256(os.path.join(here, mod)))
    for p in parts:
        h.update(p.encode() + b"\0")
    return h.hexdigest()


def _busybox_version(busybox: str) -> str:
    out = disk.run([busybox]).stdout
    first = out.splitlines()[0] if out else ""
    # "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary."
    if not first.startswith("BusyBox v"):
        raise BuildError(f"cannot tell the version of {busybox}")
    return first.split()[1][1:]


def _metadata(path: str, version: str, kver: str, agent: bool, created: int) -> None:
    release = ".".join(version.split(".")[:2])
    meta = {
        "architecture": "x86_64",
        "creation_date": created,
        "properties": {
            "architecture": "x86_64",
            "description": f"BusyBox v{version} VM (Debian kernel {kver}{'' if agent else ', no agent'})",
            "name": f"busybox-vm-{release}",
            "os": "busybox",
            "release": release,
            "variant": "vm",
            # the UKI is not signed for UEFI Secure Boot
            "requirements.secureboot": "false",
        },
        "templates": {
            "/etc/hostname": {"when": ["create", "copy"], "template": "hostname.tpl", "create_only": False,
                              "properties": {}},
        },
    }
    blobs = {"metadata.yaml": yaml.safe_dump(meta, sort_keys=False).encode(),
             "templates/hostname.tpl": b"{{ instance.name }}\n"}

    def info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.size, ti.uid, ti.gid = kind, mode, created, size, 0, 0
        ti.uname = ti.gname = "root"
        return ti
    import io
    with tarfile.open(path, "w:xz", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(info("templates", tarfile.DIRTYPE, 0o755))
        for name, data in blobs.items():
            tar.addfile(info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))


def _build(out: str, work: str, k: kernel.Kernel, busybox: str, agent: str | None, build_id: str,
           log: Callable[[str], None]) -> None:
    ids = uuid.UUID(build_id[:32])
    fs_uuid = uuid.uuid5(ids, "root-fs")
    cmdline = f"console=ttyS0 root=UUID={fs_uuid} rw panic=-1"
    version = _busybox_version(busybox)

    log("Writing the initramfs")
    initrd = os.path.join(out, "initrd.img")
    with open(initrd, "wb") as f:
        f.write(guest.initramfs(busybox, k.modules))
    shutil.copyfile(k.vmlinuz, os.path.join(out, "vmlinuz"))
    with open(os.path.join(out, "cmdline"), "w") as f:
        f.write(cmdline + "\n")

    log("Writing the ESP")
    uki = os.path.join(work, "corral.efi")
    disk.make_uki(uki, SYSTEMD_STUB, k.vmlinuz, initrd, cmdline, os_release=OS_RELEASE)
    esp = os.path.join(work, "esp.img")
    disk.make_esp(esp, ESP_SIZE, {"EFI/BOOT/BOOTX64.EFI": uki})

    log("Writing the root file system")
    tree = os.path.join(work, "root")
    os.mkdir(tree)
    guest.populate_root(tree, busybox, agent)
    (_, _), (rf, rl) = disk.layout(DISK_SIZE, ESP_SIZE)
    root_img = os.path.join(work, "root.img")
    disk.make_ext4(root_img, (rl - rf + 1) * disk.SECTOR, tree, fs_uuid, ROOT_LABEL)

    log("Writing the disk")
    raw = os.path.join(work, "disk.raw")
    disk.assemble(raw, esp, root_img, DISK_SIZE, ESP_SIZE, disk_guid=uuid.uuid5(ids, "disk"),
                  esp_guid=uuid.uuid5(ids, "esp"), root_guid=uuid.uuid5(ids, "root"))
    disk.to_qcow2(raw, os.path.join(out, ROOTFS_NAME))
    _metadata(os.path.join(out, META_NAME), version, k.version, agent is not None, int(time.time()))


KEEP_BUILDS = 4


def _prune(images: str, keep: str) -> None:
    """Drop all but the KEEP_BUILDS newest builds (older inputs: a changed agent, kernel or builder)."""
    builds = sorted((os.path.join(images, n) for n in os.listdir(images) if not n.startswith(".")),
                    key=os.path.getmtime, reverse=True)
    for old in builds[KEEP_BUILDS:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def build_vm_image(*, cache: str | None = None, agent: str | None | bool = True, busybox: str = BUSYBOX,
                   log: Callable[[str], None] = print) -> VMImage:
    """The VM test image, built now or found in the cache. agent=True: agent_path() (a warning is
    logged when there is none); a path: that binary; None/False: no agent."""
    cache = cache or cache_dir()
    if agent is True:
        agent = agent_path()
        if agent is None:
            log("Warning: no guest agent found (set CORRAL_VM_AGENT=/path): building the image without it")
    agent = agent or None
    for tool, what in ((busybox, "busybox-static"), (SYSTEMD_STUB, "systemd-boot-efi")):
        if not os.path.isfile(tool):
            raise BuildError(f"{tool} is missing (install {what})")
    _check_static(busybox)
    if agent:
        _check_static(agent)
    with _locked(cache):
        k = kernel.prepare(cache, log)
        build_id = _inputs_hash(k, busybox, agent, SYSTEMD_STUB)
        out = os.path.join(cache, "images", build_id)
        if not os.path.isfile(os.path.join(out, META_NAME)):
            log(f"Building the VM image ({k.version})")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".build-", dir=os.path.dirname(out)) as tmp:
                stage = os.path.join(tmp, "out")
                work = os.path.join(tmp, "work")
                os.mkdir(stage)
                os.mkdir(work)
                _build(stage, work, k, busybox, agent, build_id, log)
                if os.path.exists(out):
                    shutil.rmtree(out)
                os.rename(stage, out)
            _prune(os.path.dirname(out), keep=out)
        else:
            os.utime(out)   # in use again: the newest, never the one pruned next
    with open(os.path.join(out, "cmdline")) as f:
        cmdline = f.read().strip()
    return VMImage(metadata=os.path.join(out, META_NAME), rootfs=os.path.join(out, ROOTFS_NAME),
                   kernel=os.path.join(out, "vmlinuz"), initrd=os.path.join(out, "initrd.img"),
                   cmdline=cmdline, build_id=build_id, kernel_version=k.version, agent=agent is not None)


def direct_boot_files(image: VMImage | None = None, **kw) -> DirectBoot:
    """Kernel, initramfs and command line of the VM test image for QEMU's -kernel/-initrd/-append
    (the firmware-less floor of a boot); the root file system is the image's disk (rootfs.img)."""
    img = image or build_vm_image(**kw)
    return DirectBoot(kernel=img.kernel, initrd=img.initrd, cmdline=img.cmdline, rootfs=img.rootfs)


def main(argv: list[str] | None = None) -> int:
    """`python -m corral.image.vmbuild [--no-agent]`: build (or find) the image; progress on stderr,
    the result as JSON on stdout. The CLI runs this (it imports no server modules)."""
    import argparse
    import json
    import sys
    parser = argparse.ArgumentParser(prog="python -m corral.image.vmbuild", description=main.__doc__)
    parser.add_argument("--no-agent", action="store_true", help="build the image without the guest agent")
    args = parser.parse_args(argv)
    try:
        img = build_vm_image(agent=None if args.no_agent else True, log=lambda m: print(m, file=sys.stderr))
    except BuildError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    json.dump({**img.__dict__}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
