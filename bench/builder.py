#!/usr/bin/env python3
"""Image build time: corral-builder on images/debian-bookworm.yaml vs Debian's own `debootstrap` alone,
on the same mirror (the one this host's apt uses) and the same warm .deb cache.

    .venv/bin/python bench/builder.py [--runs 2] [--compression xz,gzip]

Rows (median seconds over the runs, after one warm-up that fills the caches):
- debootstrap alone: `debootstrap --variant=minbase --cache-dir=C bookworm DIR MIRROR`
- corral-builder build-dir: the same debootstrap + the definition's packages (systemd, ...) and actions
- corral-builder build-lxd --compression X: all of it, plus generators, metadata and squashfs
with the ratio to debootstrap alone. The builder does more than debootstrap (it installs the package
sets in the chroot and packs the image): the ratio shows what that costs, not a like-for-like race.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from corral.builder.sources.debootstrap import host_mirror  # noqa: E402

DEFINITION = os.path.join(ROOT, "images", "debian-bookworm.yaml")
CACHE = os.environ.get("CORRAL_BUILDER_CACHE", "/var/cache/corral/builder")


def timed(argv: list[str]) -> float:
    t0 = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True)
    took = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])}... failed:\n{(res.stderr or res.stdout)[-2000:]}")
    return took


def debootstrap(work: str, mirror: str) -> float:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    cache = os.path.join(CACHE, "debootstrap", f"bookworm-{arch}")
    os.makedirs(cache, exist_ok=True)
    return timed(["debootstrap", "--variant=minbase", f"--cache-dir={cache}", "bookworm",
                  os.path.join(work, "rootfs"), mirror])


def builder(work: str, mirror: str, *cmd: str) -> float:
    return timed([sys.executable, "-m", "corral.builder.cli", "--cache-dir", CACHE, "-o", f"source.url={mirror}",
                  *cmd])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--compression", default="xz,gzip")
    ap.add_argument("--no-warmup", action="store_true", help="count every run (the caches are warm already)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (debootstrap and chroots)")
    mirror = host_mirror()
    cases = {"debootstrap alone": lambda w: debootstrap(w, mirror),
             "corral-builder build-dir": lambda w: builder(w, mirror, "build-dir", DEFINITION, os.path.join(w, "root"))}
    for comp in args.compression.split(","):
        cases[f"corral-builder build-lxd ({comp})"] = (
            lambda w, comp=comp: builder(w, mirror, "build-lxd", DEFINITION, os.path.join(w, "out"), "--compression", comp))
    results: dict[str, list[float]] = {name: [] for name in cases}
    first = 1 if args.no_warmup else 0
    for run in range(first, args.runs + 1):     # run 0 warms the caches and is not counted
        for name, fn in cases.items():
            work = tempfile.mkdtemp(prefix="bench-builder-", dir="/var/tmp")
            try:
                took = fn(work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if run:
                results[name].append(took)
            print(f"{'warm-up' if not run else f'run {run}'}: {name}: {took:.1f} s", file=sys.stderr, flush=True)
    base = statistics.median(results["debootstrap alone"])
    print(f"\nmirror {mirror}, cache {CACHE}, {args.runs} runs (medians)")
    print(f"{'case':40} {'seconds':>8} {'vs debootstrap':>15}")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:40} {med:8.1f} {med / base:14.2f}x")


if __name__ == "__main__":
    main()
