#!/usr/bin/env python3
"""Cluster benchmark (ISSUE12 point 9; not a timed test): members are network namespaces on one
bridge, each a corrald with its own dir (tests/clusterlib.py), formed with `corrald init --preseed`
and join tokens.

Per cluster size (--sizes, default 3,5):
  write latency   POST /1.0/profiles over a member's unix socket, one at a time (leader / follower)
  read latency    GET /1.0/profiles/default likewise
  failover        kill -9 of the leader under a steady write load (a writer per member): time until
                  every surviving member's writes succeed again (worst member; median of --reps),
                  and until the survivors agree on a new leader
  offline seen    kill -9 of a non-leader: time until the leader lists it Offline
                  (cluster.offline_threshold = --threshold)
Scaling (up to --max members, default 16, stopping early when the host runs short of memory or a
member fails): the join time of each member, the heartbeat round length, RSS per member.

The heartbeat round length comes from the leader's GET /internal/testing/heartbeat when it reports
one (a key like "round_ms"), else from its log ("Completed heartbeat round ... duration=..."), else it
is estimated as the time for a freshly restarted member to be listed Online again.

    .venv/bin/python bench/cluster.py [--sizes 3,5] [--reps 3] [--max 16] [--threshold N] [--daemon both]

`--daemon both` (the default) runs corrald, then Debian's real LXD 5.0.2, each in a child process,
with the same threshold (11 unless given: LXD's minimum), and prints both tables and the ratios
corrald / LXD. `--daemon corrald|lxd` runs one (threshold 4 for corrald alone). The benchmark stops
with a clear message at the first feature the daemon lacks.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from common import available_mib  # noqa: E402

MIN_AVAILABLE_MIB = 512   # stop adding members when the host has less than this available


def say(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def ms_stats(xs: list[float]) -> str:
    if not xs:
        return "-"
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return f"{statistics.median(xs) * 1000:.1f} / {p95 * 1000:.1f}"


def s_stat(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f}" if xs else "-"


class Missing(Exception):
    """A step the daemon cannot do yet: the benchmark stops there, saying which."""


def step(what: str, fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except Exception as e:   # noqa: BLE001 - reported, then the benchmark stops
        first = "\n".join(line for line in str(e).strip().splitlines() if line.strip())[-600:]
        raise Missing(f"{what}: {type(e).__name__}: {first}") from e


def latencies(m, method: str, path: str, body_fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        r = m.request(method, path, body_fn(i) if body_fn else None, timeout=30)
        dt = time.perf_counter() - t0
        if r.status not in (200, 201):
            raise RuntimeError(f"{method} {path} on {m.name}: {r.status} {r.body[:200]!r}")
        out.append(dt)
    return out


def measure_size(cl, n: int, reps: int, threshold: int, requests: int) -> dict:
    c = cl.Cluster()
    try:
        ms = step(f"forming {n} members", cl.form, c, n)
        step("setting cluster.offline_threshold", cl.set_server_config, ms[0],
             {"cluster.offline_threshold": str(threshold)})
        leader = step("finding the leader (roles database-leader)", cl.wait_leader, ms)
        follower = next(m for m in ms if m is not leader)
        res = {"members": n}
        tag = cl.hexid(4)
        res["write_leader"] = step("writes on the leader", latencies, leader, "POST", "/1.0/profiles",
                                   lambda i: {"name": f"bl-{tag}-{i}", "config": {}, "devices": {}}, requests)
        res["write_follower"] = step("writes on a follower", latencies, follower, "POST", "/1.0/profiles",
                                     lambda i: {"name": f"bf-{tag}-{i}", "config": {}, "devices": {}}, requests)
        res["read_leader"] = latencies(leader, "GET", "/1.0/profiles/default", None, requests)
        res["read_follower"] = latencies(follower, "GET", "/1.0/profiles/default", None, requests)
        say(f"  {n} members: latencies measured")

        failover, elected = [], []
        for rep in range(reps):
            leader = step("finding the leader", cl.wait_leader, ms)
            survivors = [m for m in ms if m is not leader]
            ws = [cl.Writer(m, tag=f"{tag}r{rep}{m.name}", timeout=1.0) for m in survivors]
            for w in ws:
                w.start()
            try:
                time.sleep(1.0)
                killed = time.monotonic()
                leader.kill9()
                new = step("a new leader after kill -9", cl.wait_leader, survivors, survivors, 30)
                elected.append(time.monotonic() - killed)
                time.sleep(3.0)
            finally:
                for w in ws:
                    w.stop()
            firsts = [w.first_ok_started_after(killed) for w in ws]
            if any(f is None for f in firsts):
                raise Missing(f"failover: writes did not resume on every survivor within {3.0 + elected[-1]:.1f}s")
            failover.append(max(f.end - killed for f in firsts))
            step("restarting the old leader", leader.start)
            step("all Online again", cl.wait_all_online, ms, n, 60)
            say(f"  {n} members: failover {rep + 1}/{reps}: {failover[-1]:.2f}s (new leader {new.name})")
        res["failover"], res["elected"] = failover, elected

        offline = []
        for rep in range(reps):
            leader = step("finding the leader", cl.wait_leader, ms)
            victim = next(m for m in reversed(ms) if m is not leader)
            killed = time.monotonic()
            victim.kill9()
            step("the killed member listed Offline", cl.wait_status, leader, victim.name, "Offline", threshold * 3 + 10)
            offline.append(time.monotonic() - killed)
            step("restarting it", victim.start)
            step("all Online again", cl.wait_all_online, ms, n, 60)
        res["offline"] = offline
        return res
    finally:
        c.cleanup()


def heartbeat_round(cl, leader, ms) -> tuple[float | None, str]:
    """The leader's heartbeat round length (s) and where it came from."""
    try:
        meta = cl.heartbeat_counters(leader)
        for k in ("round_ms", "last_round_ms", "round_duration_ms", "duration_ms"):
            if isinstance(meta.get(k), (int, float)):
                return meta[k] / 1000, f"endpoint {k}"
    except AssertionError:
        pass
    found = re.findall(r"Completed heartbeat round.*?duration=([\d.]+)(ms|s|µs)", leader.log_tail(400))
    if found:
        v, unit = found[-1]
        return float(v) / {"ms": 1000, "s": 1, "µs": 1e6}[unit], "log"
    # estimate: a member restarted is Online again at its next good heartbeat
    victim = ms[-1] if ms[-1] is not leader else ms[-2]
    victim.kill9()
    victim.start()
    t0 = time.monotonic()
    try:
        cl.wait_status(leader, victim.name, "Online", 60)
    except AssertionError:
        return None, "estimate failed"
    return time.monotonic() - t0, "estimate (restart to Online)"


def scale(cl, limit: int, threshold: int) -> tuple[list[dict], str, tuple]:
    c = cl.Cluster()
    rows: list[dict] = []
    why = f"reached --max {limit}"
    hb: tuple = (None, "-")
    try:
        first = step("starting the first member", c.add_member, https=False)
        step("bootstrapping", cl.bootstrap, first)
        step("setting cluster.offline_threshold", cl.set_server_config, first,
             {"cluster.offline_threshold": str(threshold)})
        rows.append({"n": 1, "join": 0.0, "rss": cl_rss(first)})
        while len(c.members) < limit:
            if available_mib() < MIN_AVAILABLE_MIB:
                why = f"host memory nearly full ({available_mib()} MiB available)"
                break
            try:
                m = c.add_member(https=False, timeout=60)
            except Exception as e:   # noqa: BLE001
                why = f"member {len(c.members)} did not start: {str(e).strip().splitlines()[0][:200]}"
                break
            t0 = time.monotonic()
            try:
                cl.join(m, first)
            except Exception as e:   # noqa: BLE001
                if len(c.members) == 2:
                    raise Missing(f"joining: {str(e).strip()[-400:]}") from e
                why = f"join of member {len(c.members)} failed: {str(e).strip().splitlines()[-1][:200]}"
                break
            rows.append({"n": len(c.members), "join": time.monotonic() - t0, "rss": cl_rss(m)})
            say(f"  scale: {len(c.members)} members (join {rows[-1]['join']:.2f}s)")
        members = [m for m in c.members if m.running()]
        try:
            cl.wait_all_online(members, len(members), timeout=threshold * 3 + 30)
        except AssertionError as e:
            why += f"; not all Online at the end: {str(e)[:200]}"
        for r, m in zip(rows, members):
            r["rss_end"] = cl_rss(m)
        leader = cl.wait_leader(members)
        hb = heartbeat_round(cl, leader, members)
        return rows, why, hb
    finally:
        c.cleanup()


def cl_rss(m) -> int:
    """VmRSS (KiB) of a member's daemon, from /proc."""
    try:
        with open(f"/proc/{m.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, TypeError):
        pass
    return 0


def report(sizes: list[dict], scaled, threshold: int, daemon: str) -> None:
    interval = threshold / 2
    print(f"\ncluster benchmark ({daemon}; cluster.offline_threshold={threshold}, interval {interval:g}s)")
    print(f"{'members':<9}{'write ms leader':>18}{'write ms follower':>20}{'read ms leader':>17}"
          f"{'read ms follower':>19}{'failover s':>12}{'elected s':>11}{'offline s':>11}")
    print(f"{'':<9}{'(median / p95)':>18}{'(median / p95)':>20}{'(median / p95)':>17}{'(median / p95)':>19}")
    for r in sizes:
        print(f"{r['members']:<9}{ms_stats(r['write_leader']):>18}{ms_stats(r['write_follower']):>20}"
              f"{ms_stats(r['read_leader']):>17}{ms_stats(r['read_follower']):>19}{s_stat(r['failover']):>12}"
              f"{s_stat(r['elected']):>11}{s_stat(r['offline']):>11}")
    for r in sizes:
        worst = max(r["failover"]) if r["failover"] else None
        late = max(r["offline"]) if r["offline"] else None
        print(f"  {r['members']} members: goals failover <= 1 s: {'met' if worst is not None and worst <= 1 else 'NOT met'}"
              f" (worst {worst if worst is None else round(worst, 2)}s); offline within the threshold: "
              f"{'met' if late is not None and late <= threshold else 'NOT met'} (worst {late if late is None else round(late, 2)}s)")
    if scaled:
        rows, why, (hb, src) = scaled
        goal = "met" if len(rows) >= 16 else ("not tried" if why.startswith("reached --max") else "NOT met")
        print(f"\nscaling: {len(rows)} members ({why}); goal 16 members: {goal}")
        print(f"{'member':<8}{'join s':>8}{'RSS MiB':>9}{'RSS MiB at end':>16}")
        for r in rows:
            print(f"{r['n']:<8}{r['join']:>8.2f}{r['rss'] / 1024:>9.1f}{r.get('rss_end', 0) / 1024:>16.1f}")
        total = sum(r.get("rss_end", 0) for r in rows) / 1024
        print(f"total RSS at {len(rows)} members: {total:.0f} MiB; heartbeat round: "
              f"{'-' if hb is None else f'{hb * 1000:.0f} ms'} ({src})")


def _interrupt(*_):
    raise KeyboardInterrupt()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="3,5")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max", type=int, default=16)
    ap.add_argument("--threshold", type=int, default=None, help="cluster.offline_threshold (default 4; LXD 11)")
    ap.add_argument("--requests", type=int, default=200, help="requests per latency figure")
    ap.add_argument("--daemon", choices=("both", "corrald", "lxd"),
                    default=os.environ.get("CORRAL_CLUSTER_DAEMON", "both"))
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--json", help="also write the results to this file (JSON)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        say("bench/cluster.py needs root (network namespaces, bridges)")
        return 2
    if args.daemon == "both":
        return both(args)
    os.environ["CORRAL_CLUSTER_DAEMON"] = args.daemon
    signal.signal(signal.SIGTERM, _interrupt)   # SIGTERM cleans up as Ctrl-C does
    import clusterlib as cl   # after the daemon choice: clusterlib reads it at import
    threshold = args.threshold or cl.OFFLINE_THRESHOLD
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results: list[dict] = []
    scaled = None
    try:
        for n in sizes:
            say(f"bench: {n} members ({args.daemon})")
            results.append(measure_size(cl, n, args.reps, threshold, args.requests))
        if not args.no_scale:
            say(f"bench: scaling up to {args.max} members")
            scaled = scale(cl, args.max, threshold)
    except Missing as e:
        report(results, scaled, threshold, args.daemon)
        say(f"\nbench: stopped: {e}")
        return 1
    except KeyboardInterrupt:
        say("bench: interrupted (everything made was cleaned up)")
        return 130
    report(results, scaled, threshold, args.daemon)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sizes": results, "scaled": scaled, "threshold": threshold}, f)
    return 0


def both(args) -> int:
    """corrald then LXD, each in a child process with the same settings; then the ratios."""
    import subprocess
    import tempfile
    threshold = args.threshold or 11
    out = {}
    for daemon in ("corrald", "lxd"):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            path = f.name
        cmd = [sys.executable, os.path.abspath(__file__), "--daemon", daemon, "--sizes", args.sizes,
               "--reps", str(args.reps), "--max", str(args.max), "--threshold", str(threshold),
               "--requests", str(args.requests), "--json", path] + (["--no-scale"] if args.no_scale else [])
        rc = subprocess.call(cmd)
        try:
            with open(path) as f:
                out[daemon] = json.load(f)
        except (OSError, ValueError):
            say(f"bench: the {daemon} run gave no results (exit {rc})")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
    if len(out) == 2:
        ratios(out["corrald"], out["lxd"])
    return 0 if len(out) == 2 else 1


def _med(xs):
    return statistics.median(xs) if xs else None


def ratios(c: dict, x: dict) -> None:
    """corrald / LXD for each figure measured on both (lower is better for corrald)."""
    print(f"\nratios corrald / LXD (same threshold {c['threshold']} s; < 1: corrald is faster / smaller)")
    print(f"{'members':<9}{'write leader':>14}{'write follower':>16}{'read leader':>13}{'read follower':>15}"
          f"{'failover':>10}{'elected':>9}{'offline':>9}")

    def r(a, b):
        return f"{a / b:.2f}x" if a is not None and b else "-"
    for rc, rx in zip(c["sizes"], x["sizes"]):
        keys = ("write_leader", "write_follower", "read_leader", "read_follower", "failover", "elected", "offline")
        cells = [r(_med(rc[k]), _med(rx[k])) for k in keys]
        print(f"{rc['members']:<9}" + "".join(f"{v:>{w}}" for v, w in zip(cells, (14, 16, 13, 15, 10, 9, 9))))
    if c.get("scaled") and x.get("scaled"):
        cr, xr = c["scaled"][0], x["scaled"][0]
        n = min(len(cr), len(xr))
        cj = _med([row["join"] for row in cr[1:n]])
        xj = _med([row["join"] for row in xr[1:n]])
        crss = sum(row.get("rss_end", 0) for row in cr[:n]) / max(n, 1)
        xrss = sum(row.get("rss_end", 0) for row in xr[:n]) / max(n, 1)
        print(f"scaling to {n} members (both reached {n}; corrald {len(cr)}, LXD {len(xr)}): join time per member "
              f"{r(cj, xj)}, RSS per member {r(crss, xrss)} ({crss / 1024:.0f} vs {xrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    threading.current_thread().name = "bench-cluster"
    sys.exit(main())
