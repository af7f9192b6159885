"""The `busybox` downloader. distrobuilder downloads busybox's source and compiles it; corral-builder
takes the host's static busybox (Debian's busybox-static, /bin/busybox) instead, so the build needs no
compiler and no network. image.release, when given, must be that busybox's version (major.minor or
the full version); a different one is refused naming the version available.

The rootfs: the FHS directories, busybox and a symlink per applet, /etc/passwd, group, shadow, hosts,
an /etc/inittab for busybox init, and /sbin/init: a small shell PID 1 that runs /etc/init.d/rcS,
reaps orphans and stops on SIGPWR (LXD's and liblxc's stop signal, which busybox init ignores)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

from corral.builder.sources import Source, SourceError

BUSYBOX = "/bin/busybox"

INIT = """#!/bin/sh
# PID 1: rcS, then reap orphans; stop on SIGPWR/SIGTERM/SIGUSR2, reboot on SIGINT (LXD's signals).
halt() { trap '' PWR TERM USR2; kill -TERM -1 2>/dev/null; sync; exit 0; }
trap halt PWR TERM USR2
trap 'kill -TERM -1 2>/dev/null; sync; reboot -f' INT
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
/etc/init.d/rcS
while :; do
    sleep 2147483647 &
    wait $!
done
"""

RCS = """#!/bin/sh
[ -d /proc/self ] || mount -t proc proc /proc
ip link set lo up 2>/dev/null
hostname -F /etc/hostname 2>/dev/null
if [ -e /sys/class/net/eth0 ]; then
    udhcpc -b -S -i eth0 -x "hostname:$(hostname)" -s /etc/udhcpc/default.script >/dev/null 2>&1
fi
"""

DHCP_SCRIPT = """#!/bin/sh
case "$1" in
    deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip -4 addr add "$ip/${mask:-24}" dev "$interface"
        for r in $router; do ip -4 route replace default via "$r" dev "$interface"; done
        : > /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done ;;
esac
exit 0
"""

FILES = {
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
    "etc/group": ("root:x:0:\nnogroup:x:65534:\n", 0o644),
    "etc/shadow": ("root:*:0:0:99999:7:::\nnobody:*:0:0:99999:7:::\n", 0o640),
    "etc/hosts": ("127.0.0.1\tlocalhost\n127.0.1.1\tdistrobuilder\n::1\tlocalhost ip6-localhost ip6-loopback\n",
                  0o644),
    "etc/hostname": ("distrobuilder\n", 0o644),
    "etc/resolv.conf": ("", 0o644),
    "etc/profile": ("export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n", 0o644),
    "etc/inittab": ("::sysinit:/etc/init.d/rcS\n::respawn:-/bin/sh\n::shutdown:/bin/umount -a -r\n", 0o644),
    "etc/init.d/rcS": (RCS, 0o755),
    "etc/udhcpc/default.script": (DHCP_SCRIPT, 0o755),
    "sbin/init": (INIT, 0o755),
}
DIRS = {"bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "etc": 0o755,
        "etc/init.d": 0o755, "etc/udhcpc": 0o755, "root": 0o700, "tmp": 0o1777, "dev": 0o755, "proc": 0o555,
        "sys": 0o555, "run": 0o755, "var": 0o755, "var/log": 0o755, "var/tmp": 0o1777, "home": 0o755,
        "mnt": 0o755}


def host_version(busybox: str = BUSYBOX) -> str:
    try:
        out = subprocess.run([busybox], capture_output=True, text=True).stdout
    except OSError:
        raise SourceError(f"{busybox} is missing (apt-get install busybox-static)") from None
    m = re.search(r"BusyBox v(\d+\.\d+\.\d+)", out)
    if not m:
        raise SourceError(f"cannot tell the version of {busybox}")
    return m.group(1)


class Busybox(Source):
    busybox = BUSYBOX

    def run(self, rootfs_dir: str) -> None:
        version = host_version(self.busybox)
        release = self.image.get("release", "")
        if release and not (version == release or version.startswith(release + ".")):
            raise SourceError(f'image.release "{release}": only the host\'s busybox {version} is available '
                              f"(corral-builder does not compile busybox)")
        if not release:
            self.image["release"] = ".".join(version.split(".")[:2])
        for d, mode in DIRS.items():
            path = os.path.join(rootfs_dir, d)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
        shutil.copy2(self.busybox, os.path.join(rootfs_dir, "bin/busybox"))
        os.chmod(os.path.join(rootfs_dir, "bin/busybox"), 0o755)
        applets = subprocess.run([self.busybox, "--list-full"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:
            if applet in FILES or applet == "bin/busybox":
                continue
            link = os.path.join(rootfs_dir, applet)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.lexists(link):
                os.symlink("/bin/busybox", link)
        for name, (text, mode) in FILES.items():
            path = os.path.join(rootfs_dir, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)
