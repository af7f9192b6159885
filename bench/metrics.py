#!/usr/bin/env python3
"""Metrics scrape benchmark (issue 16): the time of one GET /1.0/metrics with N running busybox
containers, corrald beside the real LXD 5.0.2 on the same host.

Each target in turn (never both at once, so neither scrape competes with the other daemon's
containers starting): its daemon in a private state directory (`dir` pool, no network, the same
busybox image), N containers created and started, then REPS scrapes over the unix socket. Both
daemons keep a scrape for 8 s, so each timed scrape waits 8.5 s after the previous one ("cold":
every container read); the scrape right after it is the cached one ("warm"). Every cold scrape is
parsed with prometheus_client and must hold a lxd_procs_total sample of each container. Also
measured: the daemon's CPU time (user + system) spent on a cold scrape, and the metric families
of one container on each daemon (any difference is printed). Medians (ms); the ratio corrald/LXD
of the cold scrape is the issue's target (at most 0.5x).

    .venv/bin/python bench/metrics.py [--count 200] [--reps 5] [--json out.json] [--no-lxd]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

from common import IMAGE, CorraldTarget, LXDTarget, cleanup_image, interrupts, median, restore_signals, say, shielded

CACHE_WAIT = 8.5
SETTLE = 10.0


def cpu_ms(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def fill(target, n: int) -> list[str]:
    names = [f"m{i:04d}" for i in range(n)]
    for i, name in enumerate(names):
        target.lxc("init", IMAGE, name)
        if i % 50 == 49:
            say(f"{target.label}: {i + 1} created")
    for i in range(0, n, 50):
        target.lxc("start", *names[i:i + 50], timeout=900)
    return names


def families_of(text: str, name: str) -> set[str]:
    out = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.labels.get("name") == name:
                out.add(s.name)
    return out


def measure(target, n: int, reps: int) -> dict:
    names = fill(target, n)
    time.sleep(SETTLE)   # the starts' after-effects (inits, udev, page cache) settle first
    load0 = os.getloadavg()[0]
    cold, warm, cpu, reads = [], [], [], []
    body = b""
    for r in range(reps):
        time.sleep(CACHE_WAIT)
        c0 = cpu_ms(target.pid())
        t0 = time.perf_counter()
        body = target.api_get("/1.0/metrics")
        cold.append((time.perf_counter() - t0) * 1000)
        cpu.append(cpu_ms(target.pid()) - c0)
        t0 = time.perf_counter()
        target.api_get("/1.0/metrics")
        warm.append((time.perf_counter() - t0) * 1000)
        text = body.decode()
        seen = {s.labels.get("name") for f in text_string_to_metric_families(text) if f.name == "lxd_procs_total"
                for s in f.samples}
        for f in text_string_to_metric_families(text):
            if f.name == "corral_metrics_scrape_seconds":   # corrald: its read of the containers alone
                reads.append(f.samples[0].value * 1000)
        missing = set(names) - seen
        if missing:
            raise RuntimeError(f"{target.label}: scrape {r} lacks {len(missing)} containers, e.g. {sorted(missing)[:3]}")
        say(f"{target.label}: cold {cold[-1]:.0f} ms, warm {warm[-1]:.1f} ms, daemon cpu {cpu[-1]:.0f} ms")
    return {"cold_ms": median(cold), "warm_ms": median(warm), "cpu_ms": median(cpu), "bytes": len(body),
            "read_ms": median(reads),
            "cold_all": cold, "warm_all": warm, "load": [load0, os.getloadavg()[0]],
            "families": sorted(families_of(body.decode(), names[0]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200, help="running containers")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--no-lxd", action="store_true")
    args = ap.parse_args()
    results: dict = {}
    kinds = [CorraldTarget] + ([] if args.no_lxd else [LXDTarget])
    with interrupts():
        try:
            for kind in kinds:
                t = kind()
                try:
                    say(f"{t.label}: starting, {args.count} containers ...")
                    t.start()
                    t.import_image()
                    results[t.label] = measure(t, args.count, args.reps)
                finally:
                    shielded()
                    say(f"{t.label}: cleaning up ...")
                    t.cleanup()
                    restore_signals()
        except KeyboardInterrupt:
            say("interrupted: cleaned up")
            return 130
        finally:
            cleanup_image()
    print(report(results, args.count))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def report(results: dict, n: int) -> str:
    lines = [f"GET /1.0/metrics with {n} running busybox containers (median ms; daemon CPU ms per cold scrape)", "",
             "| daemon | cold scrape | warm (cached) | daemon CPU | body bytes | load avg (start, end) |",
             "|---|---|---|---|---|---|"]
    for label, r in results.items():
        lines.append(f"| {label} | {r['cold_ms']:.0f} | {r['warm_ms']:.1f} | {r['cpu_ms']:.0f} | {r['bytes']} | "
                     f"{r['load'][0]:.1f}, {r['load'][1]:.1f} |")
    if (c := results.get("corrald")) and c.get("read_ms") is not None:
        lines.append(f"\n(corrald's read of the containers alone, corral_metrics_scrape_seconds: {c['read_ms']:.0f} ms)")
    c, lx = results.get("corrald"), results.get("LXD")
    if c and lx:
        ratio = c["cold_ms"] / lx["cold_ms"]
        lines += ["", f"cold scrape corrald / LXD: {ratio:.2f}x (target at most 0.5x: {'met' if ratio <= 0.5 else 'NOT met'})",
                  f"daemon CPU corrald / LXD: {c['cpu_ms'] / lx['cpu_ms']:.2f}x" if lx["cpu_ms"] else ""]
        only_c = sorted(set(c["families"]) - set(lx["families"]))
        only_l = sorted(set(lx["families"]) - set(c["families"]))
        lines.append(f"families of one container only on corrald: {only_c or 'none'}; only on LXD: {only_l or 'none'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
