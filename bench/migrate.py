#!/usr/bin/env python3
"""`corral migrate-from-lxd` on a real LXD 5.0.2 test host (tests/lxdhost.py), timed: the whole migration,
the downtime of every running container (the longest gap between ICMP echo replies from the host,
pinged every 50 ms), and the way back (`--back`). `--extra N` launches N more running busybox
containers on the host first. Each run builds a fresh host and removes it afterwards.

    .venv/bin/python bench/migrate.py [--runs 3] [--extra 0]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from lxdhost import LxdHost, Pinger  # noqa: E402


def one_run(extra: int) -> dict:
    h = LxdHost()
    try:
        h.build()
        for i in range(extra):
            h.extra.append(f"cx{i}")
            h.lxc("launch", "busybox", f"cx{i}")
        running = [i["name"] for i in h.query("/1.0/instances?recursion=1") if i["status"] == "Running"]
        pingers = {n: Pinger(h.wait_ip(n)) for n in running}
        for p in pingers.values():
            p.start()
        for p in pingers.values():
            deadline = time.monotonic() + 10
            while not p.replies and time.monotonic() < deadline:
                time.sleep(0.05)
        t0 = time.monotonic()
        r = h.migrate()
        took = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError(r.stdout + r.stderr)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(not p.replies or p.replies[-1] < t0 + took
                                                  for p in pingers.values()):
            time.sleep(0.1)
        time.sleep(0.3)
        for p in pingers.values():
            p.done.set()
            p.join(5)
        t1 = time.monotonic()
        rb = h.migrate("--back")
        back = time.monotonic() - t1
        if rb.returncode != 0:
            raise RuntimeError(rb.stdout + rb.stderr)
        return {"migrate": took, "downtime": max(p.downtime() for p in pingers.values()), "back": back,
                "running": len(running)}
    finally:
        h.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--extra", type=int, default=0)
    a = ap.parse_args()
    runs = [one_run(a.extra) for _ in range(a.runs)]
    print(f"test host with {runs[0]['running']} running containers ({a.runs} runs, median [min-max]):")
    for k, label in (("migrate", "migration"), ("downtime", "downtime (ping)"), ("back", "--back")):
        v = [r[k] for r in runs]
        print(f"  {label:16} {statistics.median(v):6.2f} s  [{min(v):.2f}-{max(v):.2f}]")


if __name__ == "__main__":
    main()
