#!/usr/bin/env python3
"""Cluster listing benchmark (ISSUE13 acceptance 8; not a timed test): `lxc list` of N busybox
containers (default 300) spread over a 3-member corrald cluster (network namespaces on one bridge,
tests/clusterlib.py), against a standalone corrald with the same N and against the real LXD 5.0.2
standalone, all driven by the real `lxc` client.

Setup: the cluster gets a `dir` pool `default` created as LXD does (`lxc storage create default dir
--target mX` on every member, then `lxc storage create default dir`), the pool as the default
profile's root disk, the busybox image imported on m1, and N/3 containers on each member (`lxc init
IMAGE cNNNN --target mX` over that member's unix socket; the image is copied to it on demand). The
standalone servers get the same pool, image and N containers. The containers are created stopped
(`lxc init`) to keep the setup fast; `--running` starts them all, and then each target is set up,
measured and removed in turn (N running containers three times over would not fit beside each other).

Per repetition, on every target in turn (order alternating between repetitions; the cluster from
each of its members): `lxc list --format csv`, `lxc list` (the default table), and, without the
client's start-up, `GET /1.0/instances?recursion=2` and `?recursion=1` on the unix socket. Figures are
medians (ms). Printed as markdown: the table, then the ratios cluster / standalone corrald (goal:
`lxc list` at most 1.5x), cluster / LXD and standalone corrald / LXD.

    .venv/bin/python bench/cluster_list.py [--count 300] [--reps 5] [--running] [--no-lxd] [--json out]

The benchmark stops with a clear message at the first step the daemon cannot do yet, and cleans up
everything it made (cluster, daemons, containers, dirs), also on Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time

from common import IMAGE, CorraldTarget, LXDTarget, cleanup_image, interrupts, median, say, shielded, timed

from helpers import UnixConn, busybox_tarball  # noqa: E402 (common put tests/ on the path)

OPS = ("lxc list --format csv", "lxc list", "API recursion=2", "API recursion=1")
GOAL = 1.5        # cluster listing / standalone corrald listing, at most


class Missing(Exception):
    """A step the daemon cannot do yet: the benchmark stops there, saying which."""


def step(what: str, fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except Exception as e:   # noqa: BLE001 - reported, then the benchmark stops
        text = getattr(e, "stderr", "") or str(e)
        first = "\n".join(line for line in str(text).strip().splitlines() if line.strip())[-600:]
        raise Missing(f"{what}: {type(e).__name__}: {first}") from e


def api_get(socket_path: str, path: str, timeout: float = 300) -> bytes:
    conn = UnixConn(socket_path, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
        return body
    finally:
        conn.close()


class Standalone:
    """A standalone server (corrald or LXD, bench/common.py) as a listing target."""

    def __init__(self, inner, label: str):
        self.inner = inner
        self.label = label

    def setup(self) -> None:
        step(f"{self.label}: starting", self.inner.start)
        step(f"{self.label}: importing the busybox image", self.inner.import_image)

    def creators(self):
        """(lxc runner, extra `lxc init` arguments) per place containers are created."""
        return [(self.inner.lxc, [])]

    def viewpoints(self):
        """(label, lxc runner, unix socket) per place the listing is measured from."""
        return [(self.label, self.inner.lxc, self.inner.socket)]

    def remove_containers(self) -> None:
        self.inner.delete_all()

    def cleanup(self) -> None:
        self.inner.cleanup()


class ClusterTarget:
    """3 corrald members in network namespaces (tests/clusterlib.py), the pool made per member then
    globally, the image on m1."""
    label = "corrald cluster"

    def __init__(self, members: int = 3):
        import clusterlib
        self.cl = clusterlib
        self.n = members
        self.c = clusterlib.Cluster()
        self.ms = []

    def setup(self) -> None:
        cl = self.cl
        self.ms = step(f"forming {self.n} members", cl.form, self.c, self.n)
        m1 = self.ms[0]
        for m in self.ms:
            step(f"pool on {m.name} (lxc storage create default dir --target {m.name})",
                 m1.lxc, "storage", "create", "default", "dir", "--target", m.name)
        step("pool across the cluster (lxc storage create default dir)", m1.lxc, "storage", "create", "default", "dir")
        step("the pool as the default profile's root disk", m1.lxc, "profile", "device", "add", "default",
             "root", "disk", "path=/", "pool=default")
        step("importing the busybox image on m1", m1.lxc, "image", "import", busybox_tarball(), "--alias", IMAGE)

    def creators(self):
        return [(m.lxc, ["--target", m.name]) for m in self.ms]

    def viewpoints(self):
        return [(f"cluster, from {m.name}", m.lxc, m.socket) for m in self.ms]

    def remove_containers(self) -> None:
        m1 = self.ms[0]
        res = m1.lxc("list", "-c", "n", "--format", "csv", check=False, timeout=600)
        names = [n for n in res.stdout.split() if n] if res.returncode == 0 else []
        for i in range(0, len(names), 50):
            m1.lxc("delete", "-f", *names[i:i + 50], check=False, timeout=900)

    def cleanup(self) -> None:
        self.c.cleanup()


def fill(target, count: int, workers: int, running: bool) -> float:
    """`count` containers over the target's creators (round robin); seconds it took."""
    creators = target.creators()
    t0 = time.monotonic()

    def make(i: int):
        lxc, extra = creators[i % len(creators)]
        lxc("init", IMAGE, f"c{i:04d}", *extra, timeout=600)

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(make, i) for i in range(count)]
        for n, f in enumerate(concurrent.futures.as_completed(futures), 1):
            step(f"{target.label}: lxc init of container {n}/{count}", f.result)
            if n % 50 == 0 or n == count:
                say(f"  {target.label}: {n}/{count} created ({time.monotonic() - t0:.0f}s)")
    if running:
        for k, (lxc, _extra) in enumerate(creators):
            names = [f"c{i:04d}" for i in range(count) if i % len(creators) == k]
            for j in range(0, len(names), 25):
                step(f"{target.label}: lxc start", lxc, "start", *names[j:j + 25], timeout=900)
        say(f"  {target.label}: all {count} started")
    return time.monotonic() - t0


def check_count(target, count: int) -> None:
    for label, lxc, _sock in target.viewpoints():
        rows = [r for r in lxc("list", "--format", "csv", "-c", "n", timeout=300).stdout.splitlines() if r]
        if len(rows) != count:
            raise Missing(f"{label}: lxc list shows {len(rows)} containers, expected {count}")


def one_rep(lxc, sock: str) -> dict[str, float]:
    return {"lxc list --format csv": timed(lambda: lxc("list", "--format", "csv", timeout=300)),
            "lxc list": timed(lambda: lxc("list", timeout=300)),
            "API recursion=2": timed(lambda: api_get(sock, "/1.0/instances?recursion=2")),
            "API recursion=1": timed(lambda: api_get(sock, "/1.0/instances?recursion=1"))}


def measure(targets: list, reps: int, samples: dict) -> None:
    for r in range(reps):
        order = targets if r % 2 == 0 else targets[::-1]
        for t in order:
            for label, lxc, sock in t.viewpoints():
                got = step(f"{label}: listing", one_rep, lxc, sock)
                for op, ms in got.items():
                    samples.setdefault(label, {o: [] for o in OPS})[op].append(ms)
                    if label.startswith("cluster"):
                        samples.setdefault("cluster (every member)", {o: [] for o in OPS})[op].append(ms)
        say(f"  repetition {r + 1}/{reps} done")


def report(samples: dict, count: int, reps: int, running: bool, fills: dict) -> str:
    med = {label: {op: median(v) for op, v in ops.items()} for label, ops in samples.items()}
    state = "running" if running else "stopped (created with lxc init)"
    lines = [f"`lxc list` of {count} busybox containers, {state}; medians of {reps} repetitions (ms)", "",
             "| target | " + " | ".join(OPS) + " |", "|---|" + "---|" * len(OPS)]
    for label, row in med.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[op]:.0f}" for op in OPS) + " |")
    lines += ["", "setup: " + ", ".join(f"{k} {v:.0f}s" for k, v in fills.items())]

    def ratio(a: str, b: str, op: str):
        if a in med and b in med and med[b][op]:
            return med[a][op] / med[b][op]
        return None
    lines += ["", "| ratio | " + " | ".join(OPS) + " |", "|---|" + "---|" * len(OPS)]
    pairs = [("cluster (every member)", "corrald"), ("cluster (every member)", "LXD"), ("corrald", "LXD")]
    pairs += [(label, "corrald") for label in med if label.startswith("cluster, from")]
    for a, b in pairs:
        cells = [ratio(a, b, op) for op in OPS]
        if any(c is not None for c in cells):
            lines.append(f"| {a} / {b} | " + " | ".join("—" if c is None else f"{c:.2f}x" for c in cells) + " |")
    lines += ["", f"| goal | measured | at most | met |", "|---|---|---|---|"]
    for op in ("lxc list --format csv", "lxc list"):
        got = ratio("cluster (every member)", "corrald", op)
        worst = max((ratio(label, "corrald", op) or 0) for label in med if label.startswith("cluster, from")) \
            if any(label.startswith("cluster, from") for label in med) else None
        if got is not None:
            lines.append(f"| `{op}`: cluster / standalone corrald (median over members; worst member "
                         f"{worst:.2f}x) | {got:.2f}x | {GOAL}x | {'yes' if got <= GOAL else 'no'} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=300, help="containers per target (spread over the members)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=4, help="lxc init run in parallel while filling")
    ap.add_argument("--running", action="store_true", help="start the containers (targets one at a time)")
    ap.add_argument("--no-lxd", action="store_true")
    ap.add_argument("--no-cluster", action="store_true", help="standalone targets only (for comparison runs)")
    ap.add_argument("--json", help="also write the samples here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        say("bench/cluster_list.py needs root (network namespaces, bridges, containers)")
        return 2
    targets = []
    if not args.no_lxd:
        targets.append(Standalone(LXDTarget(), "LXD"))
    targets.append(Standalone(CorraldTarget(), "corrald"))
    if not args.no_cluster:
        targets.append(ClusterTarget())
    samples: dict = {}
    fills: dict = {}
    load0 = os.getloadavg()[0]
    status = 0
    cleaned: list = []
    missing: list[str] = []
    with interrupts():
        try:
            if args.running:          # one target at a time: set up, fill, measure, remove
                for t in targets:
                    say(f"{t.label}: setting up")
                    t.setup()
                    fills[t.label] = fill(t, args.count, args.workers, True)
                    check_count(t, args.count)
                    measure([t], args.reps, samples)
                    say(f"{t.label}: removing")
                    t.remove_containers()
                    t.cleanup()
                    cleaned.append(t)
            else:
                ready = []
                for t in targets:
                    say(f"{t.label}: setting up")
                    try:
                        t.setup()
                        fills[t.label] = fill(t, args.count, args.workers, False)
                        check_count(t, args.count)
                        ready.append(t)
                    except Missing as e:   # the others are still measured
                        say(f"\nbench: {t.label} left out: {e}")
                        missing.append(f"{t.label}: {e}")
                measure(ready, args.reps, samples)
        except Missing as e:
            say(f"\nbench: stopped: {e}")
            status = 1
        except KeyboardInterrupt:
            say("interrupted: cleaning up")
            status = 130
        finally:
            shielded()
            for t in [t for t in targets if t not in cleaned]:
                say(f"cleaning up {t.label} ...")
                try:
                    if args.running and not isinstance(t, Standalone):
                        t.remove_containers()
                    t.cleanup()
                except Exception as e:   # noqa: BLE001 - go on with the others
                    say(f"  cleanup of {t.label}: {e}")
            cleanup_image()
    if samples:
        print(report(samples, args.count, args.reps, args.running, fills))
        for m in missing:
            print(f"\nleft out: {m}")
        print(f"\n(1-minute load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
              f"on {os.cpu_count()} cpus)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": samples, "fills": fills, "count": args.count, "running": args.running}, f)
    return status or (1 if missing else 0)


if __name__ == "__main__":
    sys.exit(main())
