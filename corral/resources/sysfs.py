"""Readers for /proc and /sys shared by the hardware inventory."""
from __future__ import annotations

import os
import re

SYS_CPU = "/sys/devices/system/cpu"
SYS_NODE = "/sys/devices/system/node"
SYS_PCI = "/sys/bus/pci/devices"
SYS_USB = "/sys/bus/usb/devices"
SYS_DMI = "/sys/class/dmi/id"
PCI_ADDR = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$")
PCI_IDS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")


# --------------------------------------------------------------- helpers
def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return default


def _int(path: str, default: int = 0, base: int = 10) -> int:
    try:
        return int(_read(path), base)
    except ValueError:
        return default


def _ls(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _link_name(path: str) -> str:
    """Basename of a symlink target ("" when absent), e.g. a driver name."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return ""


def _natural(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _cpulist(text: str) -> set[int]:
    """Parse a kernel CPU list such as "0-3,8"."""
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def _size(text: str) -> int:
    """Parse sysfs cache sizes like "32K" / "1M" into bytes."""
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    digits = text.rstrip("KMGkmg")
    return int(digits) * mult if digits.isdigit() else 0


def _meminfo(path: str) -> dict[str, int]:
    """Parse /proc/meminfo or a node meminfo into {key: value in bytes/count}."""
    out = {}
    for line in _read(path).splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if words:
            key = key.split()[-1]  # drop the "Node N" prefix
            out[key] = int(words[0]) * (1024 if words[1:] == ["kB"] else 1)
    return out


def _driver_version(dev: str) -> str:
    """Version of the module driving *dev* (a sysfs device path): the module's
    version, else the kernel release (built-in driver); "" without a driver."""
    if not os.path.exists(f"{dev}/driver"):
        return ""
    return _read(f"{dev}/driver/module/version") or os.uname().release


def _pci_parent(path: str) -> str:
    """Real sysfs path of the closest PCI device above *path* ("" if none)."""
    real = os.path.realpath(path)
    while real not in ("/", "/sys/devices"):
        if PCI_ADDR.match(os.path.basename(real)):
            return real
        real = os.path.dirname(real)
    return ""


def _numa(dev: str) -> int:
    return max(_int(os.path.join(dev, "numa_node"), 0), 0) if dev else 0


def _hexid(path: str) -> str:
    return _read(path).removeprefix("0x")


_pci_names: dict | None = None


def _pci_name(vendor: str, product: str = "") -> str:
    """Vendor (or vendor+product) name from pci.ids, "" when unavailable."""
    global _pci_names
    if _pci_names is None:
        _pci_names = {}
        path = next((p for p in PCI_IDS if os.path.exists(p)), None)
        vend = None
        for line in _read(path).splitlines() if path else []:
            if not line or line[0] == "#" or line.startswith("\t\t"):
                continue
            if line[0] == "C":  # device classes follow; we are done
                break
            if line[0] == "\t" and vend:
                pid, _, name = line.strip().partition(" ")
                _pci_names[(vend, pid)] = name.strip()
            elif line[0] != "\t":
                vend, _, name = line.partition(" ")
                _pci_names[(vend, "")] = name.strip()
    return _pci_names.get((vendor, product), "")


# ------------------------------------------------------------------- cpu
