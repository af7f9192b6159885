#!/usr/bin/env python3
"""Density benchmark: as many busybox containers as fit (up to --max), host memory per running
container, launch time at the end, for corrald and the real LXD 5.0 (one daemon at a time).

Host memory of a daemon's containers: the summed PSS (/proc/PID/smaps_rollup) of the daemon and of
every liblxc `[lxc monitor]` process of its containers, divided by the number running (PSS splits
the pages a monitor still shares with the daemon it was forked from, so the sum counts each page
once). The containers' own processes are the same busybox for both and are not counted.

Three phases per daemon, each measured the same way (memory per container, median launch time of
--launches launches at the end, each deleted again):
  filled       after the containers were launched;
  restarted    after a daemon restart that leaves the containers running (the monitors of the old
               daemon no longer share pages with the new one); also how long the shutdown took, the
               time until the restarted daemon was ready (`waitready`) and the first `lxc list`;
  after load   after a load run (--requests API requests: full listings, state, config reads) and
               a restart of --restarts containers, so their monitors start from the grown daemon.

    .venv/bin/python bench/density.py [--max 1000] [--launches 3] [--requests 2000] [--no-lxd]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from common import (IMAGE, available_mib, CorraldTarget, LXDTarget, cleanup_image, interrupts, median, pss_kib, restore_signals, say,
                    shielded, timed)

MIN_AVAILABLE_MIB = 1024   # stop filling when the host has less than this available


def fill(target, limit: int) -> int:
    n = 0
    while n < limit:
        if available_mib() < MIN_AVAILABLE_MIB:
            say(f"  {target.label}: host memory nearly full at {n} containers")
            break
        res = target.lxc("launch", IMAGE, f"d{n:04d}", check=False, timeout=300)
        if res.returncode != 0:
            say(f"  {target.label}: launch {n + 1} failed, stopping there: {res.stderr.strip()[-300:]}")
            target.lxc("delete", "-f", f"d{n:04d}", check=False)
            break
        n += 1
        if n % 50 == 0:
            say(f"  {target.label}: {n} running")
    return n


def load_run(target, requests: int, names: list[str]) -> None:
    """Requests of the kinds dashboards and scripts make, round robin (full listings are one in 8)."""
    kinds = ["/1.0/instances?recursion=1", "/1.0", "/1.0/instances/{n}", "/1.0/instances/{n}/state",
             "/1.0/instances?recursion=1", "/1.0/profiles?recursion=1", "/1.0/instances/{n}",
             "/1.0/instances?recursion=2"]
    for i in range(requests):
        path = kinds[i % len(kinds)]
        if "{n}" in path:
            if not names:
                continue
            path = path.format(n=names[(i // len(kinds)) % len(names)])
        target.api_get(path)


def measure(target, running: int, launches: int) -> dict:
    time.sleep(2)   # let the last start settle
    mem = target.memory()
    total = mem["daemon_pss"] + mem["monitor_pss"]
    out = {"running": running, "monitors": mem["monitors"], "daemon_rss_mib": mem["daemon_rss"] / 1024,
           "daemon_pss_mib": mem["daemon_pss"] / 1024, "monitor_pss_mib": mem["monitor_pss"] / 1024,
           "per_container_mib": total / 1024 / running if running else None,
           "mean_monitor_pss_mib": mem["monitor_pss"] / 1024 / mem["monitors"] if mem["monitors"] else None}
    samples = []
    for i in range(launches):
        samples.append(timed(lambda: target.lxc("launch", IMAGE, f"e{i}")))
        target.lxc("delete", "-f", f"e{i}")
    out["launch_ms"] = median(samples)
    return out


def show(target, phase: str, row: dict) -> None:
    """One phase's figures, printed as soon as they are measured."""
    if row.get("running") is None:
        say(f"  {target.label:8} {phase:11} not measured: {row.get('note', '')}")
        return
    restart = ""
    if "ready_s" in row:
        ready = "not ready" if row["ready_s"] is None else f"{row['ready_s']:.1f} s"
        restart = (f", restart: shutdown {row['shutdown_s']:.1f} s, ready {ready}, first `lxc list` "
                   f"{fmt(row.get('list_ms'), '.0f')} ms")
    say(f"  {target.label:8} {phase:11} {row['running']} running: {row['per_container_mib'] or 0:.2f} MiB per "
        f"container (daemon PSS {row['daemon_pss_mib']:.0f} MiB, monitors {row['monitor_pss_mib']:.0f} MiB), "
        f"launch {row['launch_ms'] or 0:.0f} ms{restart}")


def run(target, args) -> dict:
    say(f"{target.label}: filling up to {args.max} containers ...")
    n = fill(target, args.max)
    names = [f"d{i:04d}" for i in range(n)]
    phases = {"filled": measure(target, n, args.launches)}
    show(target, "filled", phases["filled"])
    say(f"{target.label}: restarting the daemon (waiting up to {args.ready_timeout:.0f} s for it to be ready) ...")
    times = target.restart(args.ready_timeout)
    if times["ready_s"] is None:   # reported, not a crash: the later phases need a daemon
        phases["restarted"] = {"running": None, **times, "note": f"not ready within {args.ready_timeout:.0f} s"}
        show(target, "restarted", phases["restarted"])
        return phases
    list_ms = timed(lambda: target.lxc("list", timeout=args.ready_timeout))
    phases["restarted"] = {**measure(target, n, args.launches), **times, "list_ms": list_ms}
    show(target, "restarted", phases["restarted"])
    say(f"{target.label}: load run ({args.requests} requests) ...")
    load_run(target, args.requests, names)
    before = set(target.memory()["monitor_pids"])
    restarted = names[:min(args.restarts, n)]
    for name in restarted:
        target.lxc("restart", "--force", name)
    phases["after load"] = measure(target, n, args.launches)
    new = [p for p in target.memory()["monitor_pids"] if p not in before]
    phases["after load"]["new_monitor_pss_mib"] = (sum(pss_kib(p) for p in new) / 1024 / len(new)) if new else None
    show(target, "after load", phases["after load"])
    return phases


def fmt(v, spec=".2f") -> str:
    return "—" if v is None else format(v, spec)


def report(results: dict) -> str:
    lines = ["| daemon | phase | running | daemon RSS MiB | daemon PSS MiB | monitors PSS MiB | MiB per container "
             "| mean monitor PSS MiB | launch ms |", "|" + "---|" * 9]
    for who, phases in results.items():
        for phase, r in phases.items():
            if r.get("running") is None:
                lines.append(f"| {who} | {phase} | {r.get('note', '—')} |" + " — |" * 6)
                continue
            mean = r.get("new_monitor_pss_mib", r["mean_monitor_pss_mib"])
            lines.append(f"| {who} | {phase} | {r['running']} | {r['daemon_rss_mib']:.0f} | {r['daemon_pss_mib']:.0f} "
                         f"| {r['monitor_pss_mib']:.0f} | {fmt(r['per_container_mib'])} | {fmt(mean)} "
                         f"| {fmt(r['launch_ms'], '.0f')} |")
    lines += ["", "| daemon | running | shutdown s | restart to ready s | first `lxc list` after ms |",
              "|---|---|---|---|---|"]
    for who, phases in results.items():
        r = phases.get("restarted")
        if r is not None:
            ready = fmt(r["ready_s"], ".1f") if r["ready_s"] is not None else (r.get('note') or 'not ready')
            lines.append(f"| {who} | {r.get('running') or phases['filled']['running']} | {fmt(r['shutdown_s'], '.1f')} "
                         f"| {ready} | {fmt(r.get('list_ms'), '.0f')} |")
    if "LXD" in results and "corrald" in results:
        lines += ["", "| target | measured | at most | met |", "|---|---|---|---|"]
        for phase in results["corrald"]:
            c = results["corrald"][phase].get("per_container_mib")
            lx = results["LXD"].get(phase, {}).get("per_container_mib")
            if c and lx:
                lines.append(f"| memory per container, {phase}: corrald / LXD | {c / lx:.2f}x | 0.3x "
                             f"| {'yes' if c / lx <= 0.3 else 'no'} |")
    lines.append("\n(mean monitor PSS: of all monitors; after load: of the monitors started after the load run)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max", type=int, default=1000, help="at most this many containers per daemon")
    ap.add_argument("--launches", type=int, default=3, help="launches timed at the end of each phase")
    ap.add_argument("--requests", type=int, default=2000, help="API requests of the load run")
    ap.add_argument("--restarts", type=int, default=20, help="containers restarted after the load run")
    ap.add_argument("--ready-timeout", type=float, default=900,
                    help="seconds a restarted daemon may take to be ready (a slower one is reported)")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--no-lxd", action="store_true")
    args = ap.parse_args()
    results: dict = {}
    with interrupts():
        try:
            for make in [CorraldTarget] + ([] if args.no_lxd else [LXDTarget]):
                target = make()
                try:
                    target.start()
                    target.import_image()
                    results[target.label] = run(target, args)
                finally:
                    shielded()
                    say(f"cleaning up {target.label} ...")
                    target.cleanup()
                    restore_signals()
        except KeyboardInterrupt:
            say("interrupted")
            return 130
        finally:
            cleanup_image()
    print(report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
