"""Build a small LXD unified container image (metadata.yaml, templates/, rootfs/) from the host's
static busybox.

The image's /sbin/init is a shell script rather than busybox init, because busybox init ignores
SIGPWR, the signal LXD (and liblxc) send to ask a container to shut down.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import tarfile
import time

import yaml

BUSYBOX = "/bin/busybox"

INIT = """\
#!/bin/sh
# PID 1 of the Corral busybox image: run rcS, reap orphans, stop at once on SIGPWR/SIGTERM/SIGUSR2
# (halt) and reboot on SIGINT, the signals LXD uses.
halt() { trap '' PWR TERM USR2; kill -TERM -1 2>/dev/null; sync; exit 0; }
trap halt PWR TERM USR2
trap 'kill -TERM -1 2>/dev/null; sync; reboot -f' INT
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
/etc/init.d/rcS
# `wait` reaps any child of PID 1 (re-parented orphans too) and returns early when a trapped signal
# arrives; the long sleep only gives it a child to wait for.
while :; do
    sleep 2147483647 &
    wait $!
done
"""

RCS = """\
#!/bin/sh
# liblxc has already mounted /proc, /sys, /sys/fs/cgroup and /dev, and set the hostname.
ip link set lo up 2>/dev/null
if [ -e /sys/class/net/eth0 ]; then
    udhcpc -f -S -i eth0 -x "hostname:$(hostname)" -s /etc/udhcpc/default.script >/dev/null 2>&1 &
fi
"""

DHCP_SCRIPT = """\
#!/bin/sh
# udhcpc event script: address, default routes and resolv.conf from the lease.
[ -n "$1" ] || { echo "called by udhcpc only" >&2; exit 1; }
RESOLV_CONF=/etc/resolv.conf
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip -4 addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
        while ip -4 route del default dev "$interface" 2>/dev/null; do :; done
        for r in $router; do
            ip -4 route add default via "$r" dev "$interface"
        done
        : > "$RESOLV_CONF"
        [ -n "$domain" ] && echo "search $domain" >> "$RESOLV_CONF"
        for d in $dns; do
            echo "nameserver $d" >> "$RESOLV_CONF"
        done
        ;;
esac
exit 0
"""

FILES = {
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
    "etc/group": ("root:x:0:\nnogroup:x:65534:\n", 0o644),
    "etc/shadow": ("root:*:0:0:99999:7:::\nnobody:*:0:0:99999:7:::\n", 0o640),
    "etc/hosts": ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644),
    "etc/resolv.conf": ("", 0o644),
    "etc/profile": ("export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n", 0o644),
    "etc/init.d/rcS": (RCS, 0o755),
    "etc/udhcpc/default.script": (DHCP_SCRIPT, 0o755),
    "sbin/init": (INIT, 0o755),
}

DIRS = {
    "bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
    "etc": 0o755, "etc/init.d": 0o755, "etc/udhcpc": 0o755, "root": 0o700, "tmp": 0o1777,
    "dev": 0o755, "proc": 0o555, "sys": 0o555, "run": 0o755, "var": 0o755, "var/log": 0o755,
    "var/tmp": 0o1777, "home": 0o755, "mnt": 0o755,
}


def busybox_version(busybox: str = BUSYBOX) -> str:
    out = subprocess.run([busybox], capture_output=True, text=True).stdout
    m = re.search(r"BusyBox v(\d+\.\d+\.\d+)", out)
    if not m:
        raise RuntimeError(f"cannot tell the version of {busybox}")
    return m.group(1)


def _applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def _info(name: str, kind: bytes, mode: int, mtime: int, size: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.size = kind, mode, mtime, size
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def build_busybox_image(dest_dir: str, *, description: str | None = None,
                        busybox: str = BUSYBOX) -> str:
    """Write busybox-<version>.tar.gz (an LXD unified image) into dest_dir; return its path."""
    version = busybox_version(busybox)
    release = ".".join(version.split(".")[:2])
    now = int(time.time())
    metadata = {
        "architecture": "x86_64",
        "creation_date": now,
        "properties": {
            "architecture": "x86_64",
            "description": description or f"BusyBox v{version} static",
            "name": f"busybox-{release}",
            "os": "busybox",
            "release": release,
            "variant": "default",
        },
        "templates": {
            "/etc/hostname": {"when": ["create", "copy"], "template": "hostname.tpl",
                              "create_only": False, "properties": {}},
        },
    }
    blobs = {
        "metadata.yaml": (yaml.safe_dump(metadata, sort_keys=False), 0o644),
        "templates/hostname.tpl": ("{{ container.name }}\n", 0o644),
    }
    blobs.update({f"rootfs/{path}": entry for path, entry in FILES.items()})
    os.makedirs(dest_dir, exist_ok=True)
    path = os.path.join(dest_dir, f"busybox-{version}.tar.gz")
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(_info("templates", tarfile.DIRTYPE, 0o755, now))
        tar.addfile(_info("rootfs", tarfile.DIRTYPE, 0o755, now))
        for d, mode in DIRS.items():
            tar.addfile(_info(f"rootfs/{d}", tarfile.DIRTYPE, mode, now))
        with open(busybox, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            tar.addfile(_info("rootfs/bin/busybox", tarfile.REGTYPE, 0o755, now, size), f)
        for applet in _applets(busybox):
            target = f"rootfs/{applet}"
            if applet in FILES or applet == "bin/busybox":
                continue
            link = _info(target, tarfile.SYMTYPE, 0o777, now)
            link.linkname = "/bin/busybox"
            tar.addfile(link)
        for name, (text, mode) in blobs.items():
            data = text.encode()
            tar.addfile(_info(name, tarfile.REGTYPE, mode, now, len(data)), io.BytesIO(data))
    return path
