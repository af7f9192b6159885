"""What the RHEL-family HTTP sources share (distrobuilder's rhel-common): a root filesystem from an
installation ISO.

The ISO's own root image is found as distrobuilder finds it: `LiveOS/squashfs.img` (a squashfs holding
`LiveOS/rootfs.img`, ext4), else `images/install.img` (a squashfs holding `LiveOS/rootfs.img`, or itself the
root tree). It is unpacked into a scratch directory (xorriso reads the ISO, unsquashfs the squashfs, the
ext4 image is loop-mounted read-only), the ISO's `Packages`/`repodata` are copied to `/mnt/cdrom` when it
has them, and a script runs chrooted in that tree to install a minimal system into `/rootfs` with the
tree's own dnf/yum; `/rootfs` is then copied into the build's root directory.

Every mount (the loop-mounted ext4, /proc, /sys, /dev of the chroot) is made inside a private mount
namespace (`unshare --mount`), with a PID namespace of its own, that ends with the script: nothing stays
mounted, even when it fails or the builder is killed (the namespace's processes are killed with it), and
the loop device is released with its last mount.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from corral.builder.sources import SourceError
from corral.image.unpack import Budget, ImageError, free_space_limit, unsquashfs

SCRIPT_TIMEOUT = 3600

_NAMESPACE_SCRIPT = r"""
set -eu
if [ -n "${CORRAL_EXT4_IMAGE:-}" ]; then
    mkdir -p "$CORRAL_WORK/ro"
    mount -t ext4 -o ro,loop "$CORRAL_EXT4_IMAGE" "$CORRAL_WORK/ro"
    cp -a "$CORRAL_WORK/ro/." "$CORRAL_ROOT/"
    umount "$CORRAL_WORK/ro"
fi
for d in proc sys dev etc tmp; do mkdir -p "$CORRAL_ROOT/$d"; done
mount -t proc proc "$CORRAL_ROOT/proc"
mount -t sysfs sysfs "$CORRAL_ROOT/sys"
mount --rbind /dev "$CORRAL_ROOT/dev"
rm -f "$CORRAL_ROOT/etc/resolv.conf"
cp -L /etc/resolv.conf "$CORRAL_ROOT/etc/resolv.conf" 2>/dev/null || true
exec chroot "$CORRAL_ROOT" /bin/sh -c "$CORRAL_INNER"
"""


def _run(argv: list[str], what: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, env=env)
    except FileNotFoundError:
        raise SourceError(f"{argv[0]} is not installed (needed to {what})") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"Failed to {what}: {argv[0]} did not finish within {timeout:.0f}s") from None
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise SourceError(f"Failed to {what}: {' / '.join(lines[-3:]) or f'{argv[0]} exited {r.returncode}'}")
    return r


class ISO:
    """Read access to an ISO 9660 image with xorriso (no kernel iso9660 support needed)."""

    def __init__(self, path: str):
        self.path = path
        r = _run(["xorriso", "-abort_on", "FAILURE", "-indev", path, "-find", "/", "-maxdepth", "3"],
                 f"read the ISO {os.path.basename(path)}")
        self.entries = {line.strip().strip("'") for line in r.stdout.decode(errors="replace").splitlines()
                        if line.startswith("'/")}

    def has(self, path: str) -> bool:
        return path in self.entries

    def children(self, path: str) -> list[str]:
        pre = path.rstrip("/") + "/"
        return sorted(e[len(pre):] for e in self.entries if e.startswith(pre) and "/" not in e[len(pre):])

    def nonempty_dir(self, path: str) -> bool:
        return self.has(path) and bool(self.children(path))

    def extract(self, src: str, dest: str) -> None:
        _run(["xorriso", "-abort_on", "FAILURE", "-osirrox", "on", "-indev", self.path, "-extract", src, dest],
             f"extract {src} from the ISO {os.path.basename(self.path)}", timeout=3600)


def _squashfs(path: str, dest: str) -> None:
    try:
        unsquashfs(path, dest, Budget([free_space_limit(os.path.dirname(dest), "the build cache")]))
    except ImageError as e:
        raise SourceError(f"Failed to unpack {os.path.basename(path)}: {e}") from None


def _is_squashfs(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"hsqs"


def unpack_iso(iso_path: str, rootfs_dir: str, cache_dir: str, inner_script: str, env: dict[str, str],
               variant: str = "", extra_files: dict[str, bytes] | None = None) -> None:
    """Fill rootfs_dir from the ISO: its root image, then `inner_script` run chrooted in it (it must leave
    the new system in /rootfs). `env` is passed to the script; `extra_files` ({path in the tree: data})
    are written into the tree first. CORRAL_GPG_KEYS is set to the cdrom's RPM-GPG-KEY-* URLs, if any."""
    if os.geteuid() != 0:
        raise SourceError("This source needs root: it loop-mounts the ISO's root image and runs the "
                          "package manager in a chroot")
    os.makedirs(cache_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="rhel-unpack.", dir=cache_dir)
    try:
        iso = ISO(iso_path)
        root = os.path.join(work, "root")
        ext4 = ""
        if iso.has("/LiveOS/squashfs.img"):
            iso.extract("/LiveOS/squashfs.img", os.path.join(work, "squashfs.img"))
            _squashfs(os.path.join(work, "squashfs.img"), os.path.join(work, "squashfs"))
            os.unlink(os.path.join(work, "squashfs.img"))
            ext4 = os.path.join(work, "squashfs", "LiveOS", "rootfs.img")
            if not os.path.isfile(ext4):
                raise SourceError("The ISO's LiveOS/squashfs.img holds no LiveOS/rootfs.img")
            os.mkdir(root)
        elif iso.has("/images/install.img"):
            img = os.path.join(work, "install.img")
            iso.extract("/images/install.img", img)
            if not _is_squashfs(img):
                raise SourceError("The ISO's images/install.img is not a squashfs image")
            _squashfs(img, os.path.join(work, "install"))
            os.unlink(img)
            ext4 = os.path.join(work, "install", "LiveOS", "rootfs.img")
            if os.path.isfile(ext4):
                os.mkdir(root)
            else:
                ext4 = ""
                os.rename(os.path.join(work, "install"), root)
        else:
            raise SourceError(f"The ISO {os.path.basename(iso_path)} has neither LiveOS/squashfs.img nor "
                              "images/install.img: not an installation ISO")

        gpg_keys = _cdrom(iso, root, variant)
        for rel, data in (extra_files or {}).items():
            p = os.path.join(root, rel.lstrip("/"))
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)

        print(f"Running the package manager of {os.path.basename(iso_path)} in a chroot", file=sys.stderr)
        run_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
                   **env, "CORRAL_GPG_KEYS": gpg_keys, "CORRAL_WORK": work, "CORRAL_ROOT": root,
                   "CORRAL_EXT4_IMAGE": ext4, "CORRAL_INNER": inner_script}
        # setpriv: unshare is killed if this process dies; --pid --kill-child: then so is the namespace's
        # init, and the kernel kills the rest of the PID namespace; with them the mount namespace goes.
        proc = subprocess.run(["setpriv", "--pdeathsig", "KILL", "unshare", "--mount", "--propagation", "private",
                               "--pid", "--fork", "--kill-child", "/bin/sh", "-c", _NAMESPACE_SCRIPT], env=run_env, stdin=subprocess.DEVNULL,
                              stdout=sys.stderr, stderr=subprocess.PIPE, timeout=SCRIPT_TIMEOUT)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
            sys.stderr.write(proc.stderr.decode(errors="replace"))
            raise SourceError(f"The install script in the ISO's root image failed (exit {proc.returncode}): "
                              f"{lines[-1] if lines else 'no output'}")
        new_root = os.path.join(root, "rootfs")
        if not os.path.isdir(new_root) or not os.listdir(new_root):
            raise SourceError("The install script left no system in /rootfs")
        _run(["cp", "-a", new_root + "/.", rootfs_dir + "/"], "copy the new root filesystem", timeout=3600)
    except subprocess.TimeoutExpired:
        raise SourceError(f"The install script did not finish within {SCRIPT_TIMEOUT}s") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cdrom(iso: ISO, root: str, variant: str) -> str:
    """Copy the ISO's package repository to /mnt/cdrom in the tree (as distrobuilder does); the
    `file:///mnt/cdrom/RPM-GPG-KEY-*` URLs of its keys, space-separated ("" without a repository)."""
    packages, repodata = "/Packages", "/repodata"
    if not iso.has(packages):
        packages = "/BaseOS/Packages"
    if not iso.has(repodata):
        repodata = "/BaseOS/repodata"
    if iso.has(packages) and not iso.children(packages) and variant:
        packages, repodata = f"/{variant}/Packages", f"/{variant}/repodata"
    if not (iso.has(packages) and iso.has(repodata)):
        return ""
    cdrom = os.path.join(root, "mnt", "cdrom")
    os.makedirs(cdrom, exist_ok=True)
    iso.extract(packages, os.path.join(cdrom, "Packages"))
    iso.extract(repodata, os.path.join(cdrom, "repodata"))
    urls = []
    for name in iso.children("/"):
        if name.startswith("RPM-GPG-KEY-"):
            iso.extract("/" + name, os.path.join(cdrom, name))
            urls.append(f"file:///mnt/cdrom/{name}")
    return " ".join(urls)
