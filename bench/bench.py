#!/usr/bin/env python3
"""Container lifecycle benchmark: corrald and (when installed) the real LXD, side by side.

Both daemons are driven by the same real `lxc` client on the same busybox image, each in its own
temporary state directory. Prints medians (ms) of launch / start / stop / exec / delete, and of
`lxc list` with N running containers, with the ratio corrald/LXD.

    .venv/bin/python bench/bench.py [--runs 5] [--list-size 30] [--no-lxd]
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
sys.path.insert(0, os.path.join(ROOT, "tests"))

from helpers import Corrald, busybox_tarball  # noqa: E402


# Both daemons get the same set-up: a dir pool `default`, no network.
PRESEED = ("storage_pools:\n- name: default\n  driver: dir\nprofiles:\n- name: default\n  devices:\n"
           "    root: {path: /, pool: default, type: disk}\n")


class LXD:
    """The real LXD (Debian `lxd`) in a private LXD_DIR, with a dir pool and no network."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lxd-bench-", dir="/var/tmp")
        os.chmod(self.dir, 0o711)
        self.socket = os.path.join(self.dir, "unix.socket")
        self.env = dict(os.environ, LXD_DIR=self.dir, LXD_SOCKET=self.socket)
        self.proc = None

    def start(self):
        lxd = shutil.which("lxd") or "/usr/bin/lxd"
        self.proc = subprocess.Popen([lxd, "--group", "root", "--logfile", os.path.join(self.dir, "lxd.log")],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        subprocess.run([lxd, "waitready", "--timeout", "60"], env=self.env, check=True)
        subprocess.run([lxd, "init", "--preseed"], input=PRESEED, text=True, env=self.env, check=True)
        return self

    def lxc(self, *args, check=True):
        return subprocess.run(["lxc", *args], env=self.env, capture_output=True, text=True, check=check)

    def cleanup(self):
        if self.proc:
            subprocess.run(["lxd", "shutdown", "--timeout", "60"], env=self.env, capture_output=True)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        subprocess.run(["umount", "-R", self.dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def measure(target, runs: int, list_size: int) -> dict[str, float]:
    lxc = target.lxc
    lxc("image", "import", busybox_tarball(), "--alias", "bench-busybox")
    samples: dict[str, list[float]] = {k: [] for k in ("launch", "stop", "start", "exec", "delete")}
    for i in range(runs):
        name = f"bench{i}"
        samples["launch"].append(timed(lambda: lxc("launch", "bench-busybox", name)))
        time.sleep(0.3)
        samples["exec"].append(timed(lambda: lxc("exec", name, "--", "true")))
        samples["stop"].append(timed(lambda: lxc("stop", name)))
        samples["start"].append(timed(lambda: lxc("start", name)))
        time.sleep(0.3)
        samples["delete"].append(timed(lambda: lxc("delete", "-f", name)))
    names = [f"blist{i}" for i in range(list_size)]
    for n in names:
        lxc("launch", "bench-busybox", n)
    samples[f"list ({list_size} running)"] = [timed(lambda: lxc("list")) for _ in range(max(runs, 5))]
    for n in names:
        lxc("delete", "-f", n, check=False)
    lxc("image", "delete", "bench-busybox", check=False)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--list-size", type=int, default=30)
    ap.add_argument("--no-lxd", action="store_true")
    args = ap.parse_args()

    results: dict[str, dict[str, float]] = {}
    corrald = Corrald()
    try:
        corrald.start()
        corrald.run("corrald", "init", "--preseed", input=PRESEED, check=True)
        results["corrald"] = measure(corrald, args.runs, args.list_size)
    finally:
        corrald.cleanup()
    if not args.no_lxd and shutil.which("lxd"):
        lxd = LXD()
        try:
            results["lxd"] = measure(lxd.start(), args.runs, args.list_size)
        except subprocess.CalledProcessError as e:
            print(f"real LXD could not be measured: {e}", file=sys.stderr)
        finally:
            lxd.cleanup()
    else:
        print("(the real LXD is not installed: `apt-get install lxd` to compare)", file=sys.stderr)

    ops = list(results["corrald"])
    print(f"{'operation':<22}{'corrald ms':>12}{'LXD ms':>10}{'ratio':>8}")
    for op in ops:
        c = results["corrald"][op]
        lx = results.get("lxd", {}).get(op)
        ratio = f"{c / lx:.2f}x" if lx else "-"
        print(f"{op:<22}{c:>12.1f}{(f'{lx:.1f}' if lx else '-'):>10}{ratio:>8}")


if __name__ == "__main__":
    main()
