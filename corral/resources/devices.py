"""Network cards, disks, USB, PCI and system inventory (LXD's resources API)."""
from __future__ import annotations

import array
import fcntl
import os
import socket
import struct

from corral.resources.sysfs import (
    SYS_DMI, SYS_PCI, SYS_USB, _driver_version, _hexid, _int, _link_name, _ls, _numa, _pci_name, _pci_parent, _read,
)


SIOCETHTOOL, ETHTOOL_GSET = 0x8946, 0x1
PORT_TYPES = {0: "twisted pair", 1: "aui", 2: "bnc", 3: "mii", 4: "fibre",
              5: "direct attach", 0xEF: "none", 0xFF: "other"}
SUPPORTED_PORTS = {7: "twisted pair", 8: "aui", 9: "mii", 10: "fibre", 11: "bnc", 16: "backplane"}
SUPPORTED_MODES = {0: "10baseT/Half", 1: "10baseT/Full", 2: "100baseT/Half", 3: "100baseT/Full",
                   4: "1000baseT/Half", 5: "1000baseT/Full", 12: "10000baseT/Full",
                   15: "2500baseX/Full", 17: "1000baseKX/Full", 18: "10000baseKX4/Full",
                   19: "10000baseKR/Full", 23: "40000baseKR4/Full", 24: "40000baseCR4/Full",
                   25: "40000baseSR4/Full", 26: "40000baseLR4/Full"}


def _ethtool(sock: socket.socket, ifname: str) -> dict:
    """Port details via the legacy ETHTOOL_GSET ioctl ({} when unsupported)."""
    buf = array.array("B", struct.pack("I40x", ETHTOOL_GSET))
    ifreq = struct.pack("16sP", ifname.encode()[:15], buf.buffer_info()[0])
    try:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    except OSError:
        return {}
    (_, supported, _, speed, duplex, port, _, xcvr, autoneg, _, _, _, speed_hi) = \
        struct.unpack("IIIHBBBBBBIIH", buf.tobytes()[:30])
    out = {
        "supported_modes": [m for b, m in SUPPORTED_MODES.items() if supported >> b & 1],
        "supported_ports": [p for b, p in SUPPORTED_PORTS.items() if supported >> b & 1],
        "port_type": PORT_TYPES.get(port, "other"),
        "transceiver_type": "external" if xcvr else "internal",
        "auto_negotiation": bool(autoneg),
    }
    speed |= speed_hi << 16
    if 0 < speed < 0xFFFFFFFF:
        out["link_speed"] = speed
        out["link_duplex"] = {0: "half", 1: "full"}.get(duplex, "unknown")
    return {k: v for k, v in out.items() if v != []}


def get_network() -> dict:
    cards: dict[str, dict] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for ifname in _ls("/sys/class/net"):
            base = f"/sys/class/net/{ifname}"
            if not os.path.exists(f"{base}/device"):
                continue  # virtual interface (bridge, veth, lo, ...)
            dev = os.path.realpath(f"{base}/device")
            pci = _pci_parent(dev)
            card = cards.get(dev)
            if card is None:
                driver = _link_name(f"{dev}/driver")
                card = cards[dev] = {"driver": driver, "driver_version": _driver_version(dev),
                                     "ports": [], "numa_node": _numa(pci)}
                if pci:
                    # ids of the device itself: a virtio NIC reports virtio's ids
                    card.update(pci_address=os.path.basename(pci),
                                vendor_id=_hexid(f"{dev}/vendor"),
                                product_id=_hexid(f"{dev}/device"))
                    for key, name in (("vendor", _pci_name(card["vendor_id"])),
                                      ("product", _pci_name(card["vendor_id"], card["product_id"]))):
                        if name:
                            card[key] = name
            port = {
                "id": ifname,
                "address": _read(f"{base}/address"),
                "port": _int(f"{base}/dev_port"),
                "protocol": "infiniband" if _read(f"{base}/type") == "32" else "ethernet",
            }
            port.update(_ethtool(sock, ifname))
            port.setdefault("auto_negotiation", False)
            port["link_detected"] = _read(f"{base}/carrier") == "1"
            card["ports"].append(port)
    out = [cards[k] for k in sorted(cards)]
    for card in out:
        card["ports"].sort(key=lambda p: (p["port"], p["id"]))
    return {"cards": out, "total": len(out)}


# --------------------------------------------------------------- storage
BLKPBSZGET = 0x127B


def _block_size(name: str) -> int:
    """Physical block size via ioctl on /dev/NAME; 0 when it cannot be opened."""
    try:
        fd = os.open(f"/dev/{name}", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        buf = array.array("I", [0])
        fcntl.ioctl(fd, BLKPBSZGET, buf)
        return buf[0]
    except OSError:
        return 0
    finally:
        os.close(fd)


def _udev(devnum: str) -> dict[str, str]:
    props = {}
    for line in _read(f"/run/udev/data/b{devnum}").splitlines():
        if line.startswith("E:"):
            key, _, value = line[2:].partition("=")
            props[key] = value
    return props


def _disk_type(name: str, dev: str) -> str:
    if name.startswith("nvme"):
        return "nvme"
    subsystem = _link_name(f"{dev}/subsystem")
    if subsystem == "scsi":
        return "usb" if "/usb" in dev else ("sata" if "/ata" in dev else "scsi")
    return subsystem  # virtio, mmc, ...


def _by_link(directory: str, name: str) -> str:
    for link in _ls(directory):
        if os.path.basename(os.path.realpath(f"{directory}/{link}")) == name:
            return link
    return ""


def get_storage() -> dict:
    disks = []
    for name in _ls("/sys/block"):
        base = f"/sys/block/{name}"
        if not os.path.exists(f"{base}/device"):
            continue  # loop, ram, zram, dm-* ... have no backing device
        dev = os.path.realpath(f"{base}/device")
        pci = _pci_parent(dev)
        devnum = _read(f"{base}/dev")
        udev = _udev(devnum)
        disk = {
            "id": name,
            "device": devnum,
            "model": _read(f"{dev}/model") or udev.get("ID_MODEL", ""),
            "type": _disk_type(name, dev),
            "read_only": _read(f"{base}/ro") == "1",
            "size": _int(f"{base}/size") * 512,
            "removable": _read(f"{base}/removable") == "1",
            "wwn": _read(f"{dev}/wwid") or udev.get("ID_WWN", ""),
            "numa_node": _numa(pci),
            "device_path": _by_link("/dev/disk/by-path", name),
            "block_size": _block_size(name),
            "firmware_version": _read(f"{dev}/firmware_rev") or _read(f"{dev}/rev"),
            "rpm": _int(f"{base}/queue/rotational"),
            "serial": udev.get("ID_SERIAL_SHORT", ""),
            "device_id": _by_link("/dev/disk/by-id", name),
            "partitions": [],
            "pci_address": os.path.basename(pci),
        }
        for part in _ls(base):
            pbase = f"{base}/{part}"
            if os.path.exists(f"{pbase}/partition"):
                disk["partitions"].append({
                    "id": part, "device": _read(f"{pbase}/dev"),
                    "read_only": _read(f"{pbase}/ro") == "1",
                    "size": _int(f"{pbase}/size") * 512,
                    "partition": _int(f"{pbase}/partition"),
                })
        for key in ("model", "wwn", "device_path", "firmware_version", "serial", "pci_address"):
            if not disk[key]:
                del disk[key]  # omitempty in LXD
        disks.append(disk)
    return {"disks": disks, "total": len(disks)}


# ------------------------------------------------------------------- usb
USB_SPEED = {"1.5": 1.5, "12": 12.0, "480": 480.0, "5000": 5000.0, "10000": 10000.0}


def get_usb() -> dict:
    devices = []
    for name in _ls(SYS_USB):
        base = f"{SYS_USB}/{name}"
        if ":" in name or not os.path.exists(f"{base}/idVendor"):
            continue  # interfaces are collected below their device
        interfaces = []
        for iface in _ls(base):
            ibase = f"{base}/{iface}"
            if iface.startswith(name + ":"):
                driver = _link_name(f"{ibase}/driver")
                interfaces.append({
                    "class": "", "class_id": _int(f"{ibase}/bInterfaceClass", 0, 16),
                    "driver": driver, "driver_version": _driver_version(ibase),
                    "number": _int(f"{ibase}/bInterfaceNumber", 0, 16),
                    "subclass": "", "subclass_id": _int(f"{ibase}/bInterfaceSubClass", 0, 16),
                })
        devices.append({
            "bus_address": _int(f"{base}/busnum"),
            "device_address": _int(f"{base}/devnum"),
            "interfaces": interfaces,
            "product": _read(f"{base}/product"),
            "product_id": _read(f"{base}/idProduct"),
            "speed": USB_SPEED.get(_read(f"{base}/speed"), 0.0),
            "vendor": _read(f"{base}/manufacturer"),
            "vendor_id": _read(f"{base}/idVendor"),
        })
    return {"devices": devices, "total": len(devices)}


# ------------------------------------------------------------------- pci
def get_pci() -> dict:
    devices = []
    for addr in _ls(SYS_PCI):
        base = f"{SYS_PCI}/{addr}"
        driver = _link_name(f"{base}/driver")
        vendor_id, product_id = _hexid(f"{base}/vendor"), _hexid(f"{base}/device")
        group = _link_name(f"{base}/iommu_group")
        devices.append({
            "driver": driver,
            "driver_version": _driver_version(base),
            "numa_node": _numa(base),
            "pci_address": addr,
            "vendor": _pci_name(vendor_id),
            "vendor_id": vendor_id,
            "product": _pci_name(vendor_id, product_id),
            "product_id": product_id,
            "iommu_group": int(group) if group.isdigit() else 0,
            "vpd": {},
        })
    return {"devices": devices, "total": len(devices)}


# ---------------------------------------------------------------- system
CHASSIS_TYPES = {1: "Other", 2: "Unknown", 3: "Desktop", 4: "Low Profile Desktop",
                 5: "Pizza Box", 6: "Mini Tower", 7: "Tower", 8: "Portable", 9: "Laptop",
                 10: "Notebook", 11: "Hand Held", 12: "Docking Station", 13: "All in One",
                 14: "Sub Notebook", 15: "Space-saving", 16: "Lunch Box", 17: "Main Server Chassis",
                 23: "Rack Mount Chassis", 24: "Sealed-case PC", 30: "Tablet", 31: "Convertible",
                 32: "Detachable", 35: "Mini PC", 36: "Stick PC"}


def _system_type() -> str:
    if any(os.path.exists(p) for p in ("/run/systemd/container", "/.dockerenv",
                                       "/run/.containerenv")):
        return "container"
    if b"container=" in _read_bytes("/proc/1/environ"):
        return "container"
    flags = next((l for l in _read("/proc/cpuinfo").splitlines() if l.startswith("flags")), "")
    return "virtual-machine" if " hypervisor" in flags else "physical"


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def get_system() -> dict:
    def dmi(key: str) -> str:
        return _read(f"{SYS_DMI}/{key}")

    system = {"uuid": dmi("product_uuid"), "vendor": dmi("sys_vendor"),
              "product": dmi("product_name"), "family": dmi("product_family"),
              "version": dmi("product_version"), "sku": dmi("product_sku"),
              "serial": dmi("product_serial"), "type": _system_type(),
              "firmware": None, "chassis": None, "motherboard": None}
    if os.path.isdir(SYS_DMI):
        system["firmware"] = {"date": dmi("bios_date"), "vendor": dmi("bios_vendor"),
                              "version": dmi("bios_version")}
        ctype = _int(f"{SYS_DMI}/chassis_type", 2)
        system["chassis"] = {"serial": dmi("chassis_serial"),
                             "type": CHASSIS_TYPES.get(ctype, "Unknown"),
                             "vendor": dmi("chassis_vendor"), "version": dmi("chassis_version")}
        system["motherboard"] = {"product": dmi("board_name"), "serial": dmi("board_serial"),
                                 "vendor": dmi("board_vendor"), "version": dmi("board_version")}
    return system
