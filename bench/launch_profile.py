#!/usr/bin/env python3
"""Where one `lxc launch` spends its time in corrald: a per-phase profile.

Runs a private corrald (dir pool, busybox image, as bench/growth.py) with the tracer of
bench/launchtrace/ (a sitecustomize that wraps the launch path's functions once their modules load
and logs each call's wall time and database round trips; nothing in corral/ is changed), does
`--reps` launches with the real `lxc` client (each deleted after), and prints the median wall time
of each traced phase and the database round trips of one launch.

    .venv/bin/python bench/launch_profile.py [--reps 10] [--trace out.txt]
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--trace", help="keep the raw trace here")
    args = ap.parse_args()
    trace = args.trace or tempfile.mktemp(prefix="launch-trace-", suffix=".txt")
    os.environ.update(CORRAL_TRACE="1", TRACE_OUT=trace,
                      PYTHONPATH=os.path.join(HERE, "launchtrace") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    from common import IMAGE, CorraldTarget, timed   # noqa: PLC0415 - after the environment is set
    t = CorraldTarget()
    walls = []
    try:
        t.start().import_image()
        t.lxc("launch", IMAGE, "warm")
        t.lxc("delete", "-f", "warm")
        time.sleep(0.5)
        with open(trace, "a") as f:
            f.write("---- launches\n")
        for i in range(args.reps):
            walls.append(timed(lambda: t.lxc("launch", IMAGE, f"lp{i}")))
            time.sleep(0.5)   # the ready copy and backup.yaml are made after the launch
            t.lxc("delete", "-f", f"lp{i}")
            time.sleep(0.3)
    finally:
        t.cleanup()
    phases: dict[str, list[float]] = collections.defaultdict(list)
    db_per_launch = []
    with open(trace) as f:
        lines = f.read().split("---- launches\n", 1)[-1].splitlines()
    post_db = None
    for line in lines:
        m = re.match(r"\s*[\d.]+ (\S+)\s+db=(\d+)\s+(.*?) ([\d.]+) ms", line)
        if "REQ> POST /1.0/instances" in line and line.rstrip().endswith("/1.0/instances"):
            post_db = int(re.search(r"db=(\d+)", line)[1])
        if not m:
            continue
        what = m[3].replace("[sync] ", "").strip()
        if what.startswith("REQ< "):
            what = re.sub(r"/[0-9a-f-]{36}|/[0-9a-f]{64}|/lp\d+", "/<id>", what)
        phases[what].append(float(m[4]))
        if what == "do_state" and post_db is not None:
            db_per_launch.append(int(m[2]) - post_db)
            post_db = None
    print(f"lxc launch (client wall time): median {statistics.median(walls):.0f} ms over {len(walls)}")
    print(f"database round trips from POST /1.0/instances to the started instance: "
          f"{statistics.median(db_per_launch) if db_per_launch else '?'}")
    print("| phase | calls per launch | median ms |\n|---|---|---|")
    for what, v in sorted(phases.items(), key=lambda kv: -statistics.median(kv[1]) * len(kv[1])):
        if "/events" in what:
            continue
        print(f"| {what} | {len(v) / max(1, len(walls)):.1f} | {statistics.median(v):.1f} |")
    if not args.trace:
        os.unlink(trace)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
