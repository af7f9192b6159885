"""What the host offers QEMU: the binary, the UEFI firmware (OVMF) and whether KVM can boot a guest.

Firmware: `$CORRAL_OVMF_PATH` (or LXD's `$LXD_OVMF_PATH`), a directory holding OVMF's CODE/VARS files,
else Debian's /usr/share/OVMF. Every firmware path is resolved through symlinks before use: QEMU is given
(and the confinement applies to) the real file, never the link.

KVM: this kind of host has a /dev/kvm that starts QEMU but cannot boot a stock kernel (no vmx/svm:
a paravirtual flavour). The probe runs once per daemon and is cached: KVM only when /dev/kvm opens, the
CPU has vmx or svm, and QEMU reports KVM enabled; TCG otherwise, with the reason.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from corral.instance.drivers.base import DriverError

DEFAULT_OVMF_DIRS = ("/usr/share/OVMF", "/usr/share/ovmf", "/usr/share/qemu")
# (code, vars) by secure boot: LXD 5.0 pairs the secure-boot code with Microsoft's keys enrolled.
FIRMWARES = {
    True: [("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"), ("OVMF_CODE.secboot.fd", "OVMF_VARS.ms.fd"),
           ("OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd"), ("OVMF_CODE.ms.fd", "OVMF_VARS.ms.fd")],
    False: [("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"), ("OVMF_CODE.fd", "OVMF_VARS.fd")],
}


def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    if not path:
        raise DriverError("QEMU is not installed (qemu-system-x86_64 not found): install Debian's qemu-system-x86")
    return path


@functools.cache
def qemu_version() -> str:
    try:
        out = subprocess.run([qemu_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (DriverError, OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"version (\d+\.\d+\.\d+)", out)
    return m.group(1) if m else ""


@dataclass(frozen=True)
class Firmware:
    code: str        # real path of the read-only code
    vars: str        # real path of the variables template (copied per VM)
    secureboot: bool


def firmware_dirs() -> list[str]:
    env = os.environ.get("CORRAL_OVMF_PATH") or os.environ.get("LXD_OVMF_PATH")
    return [env] if env else list(DEFAULT_OVMF_DIRS)


def firmware(secureboot: bool) -> Firmware:
    """The OVMF pair for `secureboot`, real paths (symlinks followed)."""
    tried = []
    for d in firmware_dirs():
        for code, vars_ in FIRMWARES[secureboot]:
            c, v = os.path.join(d, code), os.path.join(d, vars_)
            tried.append(c)
            if os.path.isfile(c) and os.path.isfile(v):
                return Firmware(os.path.realpath(c), os.path.realpath(v), secureboot)
    kind = "secure boot " if secureboot else ""
    raise DriverError(f"Unable to find a {kind}UEFI firmware (OVMF) for QEMU: tried {', '.join(tried)} "
                      "(install Debian's ovmf or set CORRAL_OVMF_PATH)")


@dataclass(frozen=True)
class Accel:
    name: str     # "kvm" or "tcg"
    reason: str


_ACCEL: Accel | None = None


def accelerator() -> Accel:
    """The accelerator VMs run on, probed once."""
    global _ACCEL
    if _ACCEL is None:
        _ACCEL = _probe()
    return _ACCEL


def _probe() -> Accel:
    forced = os.environ.get("CORRAL_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return Accel(forced, "set by CORRAL_VM_ACCEL")
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        os.close(fd)
    except OSError as e:
        return Accel("tcg", f"/dev/kvm cannot be opened ({e.strerror})")
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        flags = []
    if "vmx" not in flags and "svm" not in flags:
        return Accel("tcg", "/dev/kvm exists but the CPU has no vmx/svm (KVM cannot boot a stock kernel here)")
    try:
        r = subprocess.run([qemu_binary(), "-accel", "kvm", "-machine", "none", "-nodefaults", "-display", "none",
                            "-qmp", "stdio"], input='{"execute":"qmp_capabilities"}\n{"execute":"query-kvm"}\n'
                           '{"execute":"quit"}\n', capture_output=True, text=True, timeout=20)
    except (DriverError, OSError, subprocess.SubprocessError) as e:
        return Accel("tcg", f"QEMU could not start with KVM ({e})")
    if '"enabled": true' not in r.stdout:
        return Accel("tcg", "QEMU reports KVM is not usable")
    return Accel("kvm", "KVM usable")


def host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0
