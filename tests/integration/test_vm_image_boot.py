"""The VM test image (corral/image/vmbuild.py) boots under QEMU TCG: UEFI through OVMF (the UKI on
the ESP) and a direct kernel boot. Checked on the serial console and over QMP: the boot log, DHCP
leases from a dnsmasq of the test's own on every NIC (two at boot, one hot-plugged), the shell,
files surviving a reboot on the ext4 root, ACPI power-off on `system_powerdown`, and the agent
started and respawned. The times printed (QEMU start to userspace, to the first lease) are the
figures of docs; nothing asserts on them beyond generous timeouts."""
from __future__ import annotations

import ipaddress
import os
import time

import pytest

from vmlib import GuestNetwork, QemuGuest, vm_image  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

BOOT_TIMEOUT = 120   # TCG on a shared 2-core machine


def _in_range(net: GuestNetwork, ip: str) -> bool:
    lo, hi = (ipaddress.ip_address(a) for a in net.range)
    return lo <= ipaddress.ip_address(ip) <= hi


def test_uefi_boot_nics_hotplug_reboot_powerdown(vm_image):
    with GuestNetwork() as net:
        taps = (net.tap(), net.tap())
        with QemuGuest(vm_image.rootfs, taps=taps) as g:
            _, t_kernel, _ = g.wait_for(r"Linux version \S+", BOOT_TIMEOUT)   # the boot log is on ttyS0
            _, t_user, _ = g.wait_for(r"corral-init: userspace", BOOT_TIMEOUT)
            leases = {}
            for eth in ("eth0", "eth1"):
                m, t, _ = g.wait_for(rf"corral-init: {eth} (\S+) ", BOOT_TIMEOUT)
                leases[eth] = (m.group(1), t)
            assert all(_in_range(net, ip) for ip, _ in leases.values()), leases
            t_net = min(t for _, t in leases.values())
            print(f"\nUEFI boot: kernel at {t_kernel:.2f}s, userspace {t_user:.2f}s, first lease {t_net:.2f}s")

            assert g.shell("uname -r").strip() == vm_image.kernel_version
            assert g.shell("readlink /dev/virtio-ports/org.corral.test").strip().startswith("../vport")
            assert "console=ttyS0" in g.shell("cat /proc/cmdline")
            addrs = g.shell("ip -4 -o addr show")
            for eth, (ip, _) in leases.items():
                assert f"{eth}    inet {ip}/24" in addrs, addrs
            with open(net.leases) as f:
                known = f.read()
            for _, mac in taps:
                assert mac in known, known

            # a NIC hot-plugged over QMP (netdev_add + device_add on a PCIe root port) gets a lease
            tap3, mac3 = net.tap()
            g.qmp("netdev_add", type="tap", id="hp0", ifname=tap3, script="no", downscript="no")
            t0 = time.monotonic()
            g.qmp("device_add", driver="virtio-net-pci", id="hpnic0", netdev="hp0", mac=mac3, bus="hp0")
            m, _, _ = g.wait_for(r"corral-init: (eth2) (\S+) ", 60)
            assert _in_range(net, m.group(2))
            print(f"hot-plugged NIC: lease {time.monotonic() - t0:.2f}s after device_add")

            # files on the ext4 root survive a reboot (busybox reboot -> PID 1 -> reboot -f)
            g.shell("echo kept > /root/persist && sync")
            since = g.type("reboot\n")
            g.wait_for(r"corral-init: reboot", 30, since)
            g.wait_for(r"corral-init: userspace", BOOT_TIMEOUT, since)
            for eth in ("eth0", "eth1", "eth2"):   # the hot-plugged NIC is still there
                g.wait_for(rf"corral-init: {eth} ", BOOT_TIMEOUT, since)
            assert g.shell("cat /root/persist").strip() == "kept"
            assert " / ext4 rw," in g.shell("cat /proc/mounts")

            # ACPI power button (system_powerdown): acpid -> poweroff -> clean unmount -> QEMU exits
            time.sleep(0.5)
            since = len(g.lines)
            t0 = time.monotonic()
            g.qmp("system_powerdown")
            assert g.wait_exit(60) == 0, g.log[-3000:]
            g.wait_for(r"corral-init: poweroff", 1, since)
            g.wait_for(r"reboot: Power down", 1, since)
            print(f"system_powerdown -> QEMU exit in {time.monotonic() - t0:.2f}s")


def test_direct_kernel_boot_and_agent_respawn(tmp_path_factory):
    """-kernel/-initrd with the image's disk (the floor for the bench), on a build holding an
    "agent": busybox itself, which exits at once (no applet of that name), so init's respawn loop
    is what keeps starting it."""
    from corral.image.vmbuild import build_vm_image, direct_boot_files
    img = build_vm_image(agent="/bin/busybox", log=lambda m: None)
    assert img.agent
    boot = direct_boot_files(img)
    assert os.path.isfile(boot.kernel) and os.path.isfile(boot.initrd) and "root=UUID=" in boot.cmdline
    with GuestNetwork() as net:
        with QemuGuest(boot.rootfs, kernel=boot.kernel, initrd=boot.initrd, append=boot.cmdline,
                       taps=(net.tap(),)) as g:
            _, t_user, _ = g.wait_for(r"corral-init: userspace", BOOT_TIMEOUT)
            _, t_net, _ = g.wait_for(r"corral-init: eth0 ", BOOT_TIMEOUT)
            print(f"\ndirect boot: userspace {t_user:.2f}s, lease {t_net:.2f}s")
            time.sleep(2.5)
            log = g.shell("cat /var/log/corral-agent.log")
            assert log.count("corral-agent: applet not found") >= 2, log
            assert "no agent in this image" not in g.log
            since = g.type("poweroff\n")
            assert g.wait_exit(60) == 0
            g.wait_for(r"corral-init: poweroff", 1, since)
