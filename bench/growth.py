#!/usr/bin/env python3
"""Growth benchmark: how launch, listings and exec cost grow with the number of running containers,
corrald and the real LXD 5.0 side by side.

Both daemons run at the same time, each in a private state directory with a `dir` pool and the same
busybox image, driven by the real `lxc` client. At each size N (running filler containers), each
repetition does, on LXD and corrald in turn (order alternating between repetitions):
`lxc launch` of a new container, `lxc exec <it> -- true`, `lxc list` (recursion=2: with state),
`lxc list -c n` (recursion=1: no state), the same two listings as single GETs on the unix
socket (the daemon's share, without the client's ~15 ms start-up), then deletes the new container (not timed). Figures are
medians (ms); the daemon's RSS is read after each size. The table and the ratios against the
targets of issue 11 are printed as markdown.

    .venv/bin/python bench/growth.py [--sizes 0,50,100,200] [--reps 5] [--json out.json] [--no-lxd]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from common import IMAGE, CorraldTarget, LXDTarget, cleanup_image, interrupts, median, say, shielded, timed

OPS = ("launch", "exec", "list", "list -c n", "API recursion=2", "API recursion=1")


def fill(target, n: int, have: int) -> int:
    for i in range(have, n):
        target.lxc("launch", IMAGE, f"f{i:04d}")
    return max(n, have)


def one_rep(target, name: str) -> dict[str, float]:
    lxc = target.lxc
    out = {"launch": timed(lambda: lxc("launch", IMAGE, name))}
    time.sleep(0.3)   # let init set its signal handlers (as bench.py does)
    out["exec"] = timed(lambda: lxc("exec", name, "--", "true"))
    out["list"] = timed(lambda: lxc("list"))
    out["list -c n"] = timed(lambda: lxc("list", "-c", "n"))
    out["API recursion=2"] = timed(lambda: target.api_get("/1.0/instances?recursion=2"))
    out["API recursion=1"] = timed(lambda: target.api_get("/1.0/instances?recursion=1"))
    lxc("delete", "-f", name)
    return out


def run(targets: list, sizes: list[int], reps: int) -> dict:
    results: dict = {t.label: {} for t in targets}
    have = {t.label: 0 for t in targets}
    for n in sizes:
        for t in targets:
            say(f"{t.label}: {n} running containers ...")
            have[t.label] = fill(t, n, have[t.label])
        samples = {t.label: {op: [] for op in OPS} for t in targets}
        for r in range(reps):
            order = targets if r % 2 == 0 else targets[::-1]
            for t in order:
                for op, ms in one_rep(t, f"g{n}r{r}").items():
                    samples[t.label][op].append(ms)
        for t in targets:
            mem = t.memory()
            row = {op: median(v) for op, v in samples[t.label].items()}
            row["rss_mib"] = mem["daemon_rss"] / 1024
            results[t.label][n] = row
            say(f"  {t.label:8} N={n:<4} " + "  ".join(f"{op} {row[op]:.0f} ms" for op in OPS)
                + f"  RSS {row['rss_mib']:.0f} MiB")
    return results


def fmt(v, unit="ms") -> str:
    return "—" if v is None else (f"{v:.0f} {unit}")


def ratio(a, b) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}x"


def report(results: dict, sizes: list[int]) -> str:
    c, lx = results["corrald"], results.get("LXD", {})
    cols = ["running"] + [f"{op} {who}" for op in OPS for who in ("LXD", "corrald")] + ["RSS LXD", "RSS corrald"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for n in sizes:
        cells = [str(n)]
        for op in OPS:
            cells += [fmt(lx.get(n, {}).get(op)), fmt(c[n][op])]
        cells += [fmt(lx.get(n, {}).get("rss_mib"), "MiB"), fmt(c[n]["rss_mib"], "MiB")]
        lines.append("| " + " | ".join(cells) + " |")
    lo, hi = sizes[0], sizes[-1]
    checks = [(f"launch at {hi} / launch at {lo} (corrald)", c[hi]["launch"] / c[lo]["launch"], 1.15)]
    if lx:
        checks.append((f"launch at {hi}: corrald / LXD", c[hi]["launch"] / lx[hi]["launch"], 0.3))
        for n in sizes:
            checks.append((f"lxc list at {n}: corrald / LXD", c[n]["list"] / lx[n]["list"], 0.5))
            checks.append((f"lxc list -c n at {n}: corrald / LXD", c[n]["list -c n"] / lx[n]["list -c n"], 0.5))
            for op in ("API recursion=2", "API recursion=1"):
                checks.append((f"{op} at {n} (daemon only): corrald / LXD", c[n][op] / lx[n][op], 0.5))
        for n in sizes:
            checks.append((f"lxc exec -- true at {n}: corrald / LXD", c[n]["exec"] / lx[n]["exec"], 0.8))
        checks.append((f"daemon RSS at {hi}: corrald / LXD", c[hi]["rss_mib"] / lx[hi]["rss_mib"], 0.7))
    lines += ["", "| target | measured | at most | met |", "|---|---|---|---|"]
    for what, got, limit in checks:
        lines.append(f"| {what} | {got:.2f}x | {limit}x | {'yes' if got <= limit else 'no'} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="0,50,100,200", help="running container counts (ascending)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", help="also write the medians here")
    ap.add_argument("--no-lxd", action="store_true")
    args = ap.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    targets = []
    with interrupts():
        try:
            targets.append(CorraldTarget())
            targets[-1].start().import_image()
            if not args.no_lxd:
                targets.append(LXDTarget())
                targets[-1].start()
                targets[-1].import_image()
            load0 = os.getloadavg()[0]
            results = run(targets, sizes, args.reps)
            results["load average"] = {"start": load0, "end": os.getloadavg()[0]}
        except KeyboardInterrupt:
            say("interrupted: cleaning up")
            return 130
        finally:
            shielded()
            for t in targets:
                say(f"cleaning up {t.label} ...")
                t.cleanup()
            cleanup_image()
    print(report(results, sizes))
    print(f"\n(1-minute load average {results['load average']['start']:.1f} at the start, "
          f"{results['load average']['end']:.1f} at the end, on {os.cpu_count()} cpus)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
