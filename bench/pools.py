#!/usr/bin/env python3
"""Launch time by storage pool type: corrald and (when installed) the real LXD, side by side.

Pools: `dir` on the state directory's filesystem, `dir` over an XFS loop mount (reflinks), and
`btrfs` on a loop file. Images: busybox and a Debian bookworm image made locally by debootstrap
(`debootstrap --variant=minbase bookworm`, ~200 MB, cached in /var/tmp/corral-bench-cache).
Each image is unpacked in each pool by one warm-up launch first; the figures are medians (ms) of
`lxc launch` (create + start) over --runs launches.

    .venv/bin/python bench/pools.py [--runs 3] [--no-lxd] [--no-debian]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench import LXD, timed  # noqa: E402
from helpers import Corrald, busybox_tarball, unmount_under  # noqa: E402

CACHE = "/var/tmp/corral-bench-cache"
MIRROR = "http://deb.debian.org/debian"


def debian_image() -> str:
    """A unified LXD image tarball of a debootstrapped Debian bookworm (made once, cached)."""
    rootfs, image = os.path.join(CACHE, "debian-rootfs"), os.path.join(CACHE, "debian-bookworm.tar")
    if os.path.exists(image):
        return image
    os.makedirs(CACHE, exist_ok=True)
    if not os.path.exists(os.path.join(rootfs, "bin")):
        print(f"debootstrap bookworm from {MIRROR} (a few minutes)...", file=sys.stderr)
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", rootfs, MIRROR], check=True,
                       stdout=subprocess.DEVNULL)
    meta = (f"architecture: x86_64\ncreation_date: {int(time.time())}\nproperties:\n"
            "  description: Debian bookworm (debootstrap minbase, shell init)\n  os: debian\n  release: bookworm\n")
    tmp = image + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        data = meta.encode()
        ti = tarfile.TarInfo("metadata.yaml")
        ti.size, ti.mtime = len(data), int(time.time())
        import io
        tar.addfile(ti, io.BytesIO(data))
        # no device nodes (images carry none; the container gets its /dev from liblxc)
        tar.add(rootfs, arcname="rootfs",
                filter=lambda m: None if m.ischr() or m.isblk() or m.isfifo() or m.name == "rootfs/usr/sbin/init"
                else m)
        # minbase has no init system: a shell init that waits for the halt signal
        init = b"#!/bin/sh\ntrap 'exit 0' PWR TERM USR2\nwhile :; do sleep 1; done\n"
        ti = tarfile.TarInfo("rootfs/usr/sbin/init")   # /sbin links to usr/sbin
        ti.size, ti.mode, ti.mtime = len(init), 0o755, int(time.time())
        tar.addfile(ti, io.BytesIO(init))
    os.rename(tmp, image)
    return image


class XfsLoop:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="corral-bench-xfs-", dir="/var/tmp")
        os.chmod(self.dir, 0o711)
        self.mnt = os.path.join(self.dir, "mnt")

    def __enter__(self):
        img = os.path.join(self.dir, "xfs.img")
        os.mkdir(self.mnt, 0o711)
        with open(img, "wb") as f:
            f.truncate(8 * 2**30)
        subprocess.run(["mkfs.xfs", "-q", "-f", img], check=True)
        subprocess.run(["mount", "-o", "loop", img, self.mnt], check=True)
        os.chmod(self.mnt, 0o711)
        return self

    def __exit__(self, *exc):
        unmount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(target, images: dict[str, str], xfs: XfsLoop, runs: int, tag: str) -> dict[tuple[str, str], float]:
    lxc = target.lxc
    lxc("storage", "create", f"{tag}btrfs", "btrfs", "size=8GiB")
    os.makedirs(os.path.join(xfs.mnt, tag), mode=0o711, exist_ok=True)   # LXD wants an existing source
    lxc("storage", "create", f"{tag}xfs", "dir", f"source={os.path.join(xfs.mnt, tag)}")
    pools = {"dir": "default", "dir/xfs": f"{tag}xfs", "btrfs": f"{tag}btrfs"}
    out = {}
    for alias, path in images.items():
        lxc("image", "import", path, "--alias", alias)
    try:
        for kind, pool in pools.items():
            for alias in images:
                lxc("launch", alias, "warm", "-s", pool)
                lxc("delete", "-f", "warm")
                samples = []
                for i in range(runs):
                    samples.append(timed(lambda: lxc("launch", alias, f"b{i}", "-s", pool)))
                    lxc("delete", "-f", f"b{i}")
                out[(kind, alias)] = statistics.median(samples)
                print(f"  {tag:8} {kind:8} {alias:8} {out[(kind, alias)]:8.0f} ms", file=sys.stderr)
    finally:
        for alias in images:
            lxc("image", "delete", alias, check=False)
        for pool in (f"{tag}btrfs", f"{tag}xfs"):
            lxc("storage", "delete", pool, check=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-lxd", action="store_true")
    ap.add_argument("--no-debian", action="store_true")
    args = ap.parse_args()
    images = {"busybox": busybox_tarball()}
    if not args.no_debian:
        images["debian"] = debian_image()
    results = {}
    with XfsLoop() as xfs:
        corrald = Corrald()
        try:
            corrald.start()
            corrald.run("corrald", "init", "--auto", check=True)
            results["corrald"] = measure(corrald, images, xfs, args.runs, "corral")
        finally:
            corrald.cleanup()
        if not args.no_lxd and shutil.which("lxd"):
            lxd = LXD()
            try:
                results["lxd"] = measure(lxd.start(), images, xfs, args.runs, "lxd")
            except subprocess.CalledProcessError as e:
                print(f"real LXD could not be measured: {e} {getattr(e, 'stderr', '')}", file=sys.stderr)
            finally:
                lxd.cleanup()
    print(f"{'launch':<20}{'corrald ms':>12}{'LXD ms':>10}{'ratio':>8}")
    for (kind, alias), c in results["corrald"].items():
        lx = results.get("lxd", {}).get((kind, alias))
        print(f"{kind + ' ' + alias:<20}{c:>12.0f}{(f'{lx:.0f}' if lx else '-'):>10}"
              f"{(f'{c / lx:.2f}x' if lx else '-'):>8}")


if __name__ == "__main__":
    main()
