"""What runs inside the VM test image: the initramfs /init (loads the modules, mounts the ext4 root
named by root=, switch_root), the root's /sbin/init (PID 1: mounts, trapped power signals, clean
power-off), rcS (DHCP on every NIC present at boot and hot-plugged later, busybox acpid for the ACPI
power button, the agent respawning, a shell on the serial console), and the udhcpc script.

Every line the guest prints about its progress starts with "corral-init:" and carries the guest's
uptime, so a boot log tells when userspace and the network came up."""
from __future__ import annotations

import os
import stat

INITRAMFS_INIT = r"""#!/bin/sh
# initramfs of the Corral VM image: load the modules, mount the root file system, switch to it.
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "corral-init: initramfs $(cut -d' ' -f1 /proc/uptime)"
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done < /lib/modules/modules.load
root=
for arg in $(cat /proc/cmdline); do
    case "$arg" in root=*) root=${arg#root=} ;; esac
done
dev=
i=0
while [ "$i" -lt 200 ]; do
    case "$root" in
        UUID=*|LABEL=*) dev=$(findfs "$root" 2>/dev/null) ;;
        /dev/*) [ -b "$root" ] && dev=$root ;;
    esac
    [ -n "$dev" ] && break
    usleep 50000
    i=$((i + 1))
done
if [ -z "$dev" ] || ! mount -t ext4 -o rw "$dev" /newroot; then
    echo "corral-init: cannot mount the root file system ${root:-(no root= given)}; rescue shell"
    exec setsid -c sh </dev/console >/dev/console 2>&1
fi
mount --move /dev /newroot/dev
umount /sys /proc
exec switch_root /newroot /sbin/init
"""

INIT = r"""#!/bin/sh
# PID 1 of the Corral VM image. busybox poweroff/halt/reboot signal PID 1 (USR2/USR1/TERM); the ACPI
# power button runs poweroff through acpid. Each stops every process, syncs, remounts / read-only
# and powers off (halt powers off too: a halted VM is of no use) or reboots.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
echo "corral-init: userspace $(cut -d' ' -f1 /proc/uptime)"
down() {
    trap '' TERM USR1 USR2 INT
    echo "corral-init: $1 $(cut -d' ' -f1 /proc/uptime)"
    kill -TERM -1 2>/dev/null
    usleep 200000
    kill -KILL -1 2>/dev/null
    usleep 20000
    sync
    umount -a -r -t nodevtmpfs,noproc,nosysfs 2>/dev/null
    mount -o remount,ro / 2>/dev/null
    sync
    "$1" -f
}
trap 'down reboot' TERM INT
trap 'down poweroff' USR1 USR2
/etc/init.d/rcS
# `wait` reaps every child of PID 1 (orphans too) and returns when a trapped signal arrives.
while :; do
    sleep 2147483647 &
    wait $!
done
"""

RCS = r"""#!/bin/sh
hostname -F /etc/hostname 2>/dev/null
ip link set lo up
mkdir -p /run/corral
/etc/corral/netwatch </dev/null >/dev/null 2>&1 &
acpid -c /etc/acpi -l /var/log/acpid.log
# /dev/virtio-ports/<name> -> ../vportNpM, as udev makes them (the agent's port among them)
for p in /sys/class/virtio-ports/*; do
    [ -r "$p/name" ] || continue
    mkdir -p /dev/virtio-ports
    ln -sf "../${p##*/}" "/dev/virtio-ports/$(cat "$p/name")"
done
if [ -x /usr/bin/corral-agent ]; then
    (
        while :; do
            /usr/bin/corral-agent --foreground </dev/null >>/var/log/corral-agent.log 2>&1
            sleep 1
        done
    ) &
else
    echo "corral-init: no agent in this image"
fi
for tty in ttyS0 hvc0; do
    [ -c "/dev/$tty" ] || continue
    (
        while :; do
            setsid -c sh -l <>"/dev/$tty" >&0 2>&0
            sleep 1
        done
    ) &
done
"""

NETWATCH = r"""#!/bin/sh
# DHCP on every network interface backed by a device: those present at boot at once, and those
# hot-plugged later within a second. A udhcpc that ended (its NIC went away) is started again when
# the interface is back.
dhcp() {
    ip link set "$1" up
    udhcpc -f -i "$1" -s /etc/udhcpc/default.script -T 1 -t 3 -A 1 -x "hostname:$(hostname)" &
    echo $! > "/run/corral/dhcp.$1"
}
while :; do
    for d in /sys/class/net/*; do
        n=${d##*/}
        [ -e "$d/device" ] || continue
        p=$(cat "/run/corral/dhcp.$n" 2>/dev/null)
        [ -n "$p" ] && kill -0 "$p" 2>/dev/null && continue
        dhcp "$n"
    done
    sleep 1
done
"""

DHCP_SCRIPT = r"""#!/bin/sh
# udhcpc event script: address, default route (one per interface, metric by ifindex) and DNS.
[ -n "$1" ] || { echo "called by udhcpc only" >&2; exit 1; }
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        rm -f "/run/corral/resolv.$interface"
        ;;
    bound|renew)
        ip -4 addr flush dev "$interface"
        ip -4 addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
        metric=$((100 + $(cat "/sys/class/net/$interface/ifindex")))
        while ip -4 route del default dev "$interface" 2>/dev/null; do :; done
        for r in $router; do
            ip -4 route add default via "$r" dev "$interface" metric "$metric"
            break
        done
        {
            [ -n "$domain" ] && echo "search $domain"
            for d in $dns; do echo "nameserver $d"; done
        } > "/run/corral/resolv.$interface"
        cat /run/corral/resolv.* > /etc/resolv.conf 2>/dev/null
        [ "$1" = bound ] && echo "corral-init: $interface $ip $(cut -d' ' -f1 /proc/uptime)" > /dev/console
        ;;
esac
exit 0
"""

POWER_BUTTON = """#!/bin/sh
# busybox acpid runs this on the ACPI power button (QEMU's system_powerdown)
exec poweroff
"""

FILES = {
    "sbin/init": (INIT, 0o755),
    "etc/init.d/rcS": (RCS, 0o755),
    "etc/corral/netwatch": (NETWATCH, 0o755),
    "etc/udhcpc/default.script": (DHCP_SCRIPT, 0o755),
    "etc/acpi/PWRF/00000080": (POWER_BUTTON, 0o755),
    "etc/hostname": ("corral\n", 0o644),
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
    "etc/group": ("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644),
    "etc/shadow": ("root:*:0:0:99999:7:::\nnobody:*:0:0:99999:7:::\n", 0o640),
    "etc/hosts": ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644),
    "etc/resolv.conf": ("", 0o644),
    "etc/profile": ("export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root\nPS1='\\h:\\w\\$ '\n", 0o644),
    "etc/fstab": ("", 0o644),
}

DIRS = {
    "bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "etc": 0o755,
    "etc/init.d": 0o755, "etc/udhcpc": 0o755, "etc/acpi": 0o755, "etc/acpi/PWRF": 0o755, "etc/corral": 0o755,
    "root": 0o700, "tmp": 0o1777, "dev": 0o755, "proc": 0o555, "sys": 0o555, "run": 0o755, "var": 0o755,
    "var/log": 0o755, "var/tmp": 0o1777, "home": 0o755, "mnt": 0o755, "lib": 0o755,
}


def applets(busybox: str) -> list[str]:
    """busybox's applets with their install paths (bin/sh, sbin/ip, usr/bin/...)."""
    from corral.image.vmbuild_disk import run
    out = run([busybox, "--list-full"]).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def populate_root(tree: str, busybox: str, agent: str | None) -> None:
    """Fill the directory `tree` (empty) with the root file system."""
    import shutil
    for d, mode in DIRS.items():
        os.makedirs(os.path.join(tree, d), exist_ok=True)
        os.chmod(os.path.join(tree, d), mode)
    shutil.copyfile(busybox, os.path.join(tree, "bin/busybox"))
    os.chmod(os.path.join(tree, "bin/busybox"), 0o755)
    for a in applets(busybox):
        if a in FILES or a == "bin/busybox":
            continue
        dst = os.path.join(tree, a)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.lexists(dst):
            os.symlink("/bin/busybox", dst)
    for path, (text, mode) in FILES.items():
        dst = os.path.join(tree, path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
        os.chmod(dst, mode)
    if agent:
        dst = os.path.join(tree, "usr/bin/corral-agent")
        shutil.copyfile(agent, dst)
        os.chmod(dst, 0o755)
    for root, dirs, files in os.walk(tree):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), 0, 0)
    os.chown(tree, 0, 0)
    os.chmod(tree, 0o755)
    os.chmod(os.path.join(tree, "etc/shadow"), 0o640)
    assert stat.S_ISDIR(os.stat(tree).st_mode)


def initramfs(busybox: str, modules: tuple[str, ...]) -> bytes:
    """The initramfs (gzip'd newc cpio): busybox with its applets, the modules and /init."""
    from corral.image.vmbuild_disk import Cpio
    c = Cpio()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "newroot", "lib",
              "lib/modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    for a in applets(busybox):
        if a != "bin/busybox":
            c.symlink(a, "/bin/busybox")
    names = []
    for ko in modules:
        names.append(os.path.basename(ko))
        with open(ko, "rb") as f:
            c.file(f"lib/modules/{names[-1]}", f.read())
    c.file("lib/modules/modules.load", "".join(n + "\n" for n in names).encode())
    c.file("init", INITRAMFS_INIT.encode(), 0o755)
    return c.finish()
