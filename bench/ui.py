#!/usr/bin/env python3
"""Web UI benchmark (issue 16, acceptance 5; not a timed test): the instances page of corrald's UI with
COUNT (200) instances, loaded in headless Chromium (Debian's chromium + chromedriver, Selenium) logged in
with a trusted client certificate (tests/uibrowser.py).

Setup: a corrald (bench/common.py's preseed: a `dir` pool, no network) on a loopback HTTPS port, the
busybox image, COUNT containers created stopped (`POST /1.0/instances`, a few at a time).
Per repetition, a fresh navigation to https://127.0.0.1:PORT/ui/#/instances, read from the page's
Performance API:
  - first-contentful-paint (the page shell: header and navigation);
  - corral:page-ready, the mark the UI sets when the instances table is drawn (GET /1.0/instances
    ?recursion=2 answered and COUNT rows in the DOM; checked);
each "cold" (the browser's cache cleared first, over the DevTools protocol) and "warm" (cached static
files). Beside them, `GET /1.0/instances?recursion=2` on the unix socket (the API's share). Figures are
medians (ms), printed as markdown.

The real LXD 5.0.2 from Debian ships no web UI (its UI came with the snap in later releases), so
there is no LXD column.

    .venv/bin/python bench/ui.py [--count 200] [--reps 5] [--json out]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import tempfile
import time

from common import IMAGE, CorraldTarget, api_get, cleanup_image, interrupts, median, say, shielded

from helpers import busybox_tarball, free_port  # noqa: E402 (common put tests/ on the path)
from uibrowser import Browser, ClientCert  # noqa: E402

READ = """return {fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
  ready: (performance.getEntriesByName('corral:page-ready')[0] || {}).startTime,
  rows: document.querySelectorAll('#instances tbody tr[data-instance]').length};"""


def fill(t: CorraldTarget, count: int, workers: int) -> None:
    def one(i):
        r = t.c.request("POST", "/1.0/instances", {"name": f"c{i:04d}", "source": {"type": "image", "alias": IMAGE}})
        if r.status >= 400:
            raise RuntimeError(f"create c{i:04d}: {r.body[:300]!r}")
        op = t.c.wait_op(r, timeout=600)
        if op["status_code"] >= 400:
            raise RuntimeError(f"create c{i:04d}: {op['err']}")
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        for n, f in enumerate(concurrent.futures.as_completed([ex.submit(one, i) for i in range(count)]), 1):
            f.result()
            if n % 50 == 0:
                say(f"  {n}/{count} created")


def load(b: Browser, count: int, cold: bool) -> dict:
    if cold:
        b.driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    b.driver.get("about:blank")
    b.get("/ui/#/instances")
    b.until(lambda: b.all("#page-instances[data-ready]"), 120, "instances page")
    m = b.until(lambda: (x := b.driver.execute_script(READ)) and x["ready"] is not None and x["fcp"] is not None and x,
                30, "paint entries")
    if m["rows"] != count:
        raise RuntimeError(f"the page shows {m['rows']} instances, not {count}")
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--json")
    args = ap.parse_args()
    t = CorraldTarget()
    tmp = tempfile.mkdtemp(prefix="corral-bench-ui-")
    b = None
    with interrupts():
        try:
            t.start()
            t.lxc("image", "import", busybox_tarball(), "--alias", IMAGE)
            port = free_port()
            r = t.c.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{port}"}})
            assert r.status == 200, r.body
            cert = ClientCert(tmp, "bench-ui")
            t.lxc("config", "trust", "add", cert.crt)
            say(f"creating {args.count} stopped containers")
            fill(t, args.count, args.workers)
            b = Browser(port, cert)
            load(b, args.count, cold=True)   # a first load, not counted
            fig = {"cold": {"fcp": [], "ready": []}, "warm": {"fcp": [], "ready": []}, "api_ms": []}
            for rep in range(args.reps):
                for kind in ("cold", "warm"):
                    m = load(b, args.count, kind == "cold")
                    fig[kind]["fcp"].append(m["fcp"])
                    fig[kind]["ready"].append(m["ready"])
                t0 = time.perf_counter()
                api_get(t.socket, "/1.0/instances?recursion=2")
                fig["api_ms"].append((time.perf_counter() - t0) * 1000)
                say(f"  rep {rep + 1}/{args.reps}: cold fcp {fig['cold']['fcp'][-1]:.0f} ms, "
                    f"table {fig['cold']['ready'][-1]:.0f} ms; warm fcp {fig['warm']['fcp'][-1]:.0f} ms, "
                    f"table {fig['warm']['ready'][-1]:.0f} ms")
            print(f"\n### Web UI, instances page with {args.count} stopped containers (corrald; medians of "
                  f"{args.reps}, ms)\n")
            print("| load | first-contentful-paint | table drawn (corral:page-ready) |")
            print("|---|---|---|")
            for kind in ("cold", "warm"):
                print(f"| {kind} | {median(fig[kind]['fcp']):.0f} | {median(fig[kind]['ready']):.0f} |")
            print(f"\n`GET /1.0/instances?recursion=2` on the unix socket: {median(fig['api_ms']):.0f} ms. "
                  "LXD 5.0.2 (Debian) has no web UI: no comparison.")
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"count": args.count, **fig}, f, indent=1)
        finally:
            shielded()
            if b is not None:
                b.close()
            t.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)
            cleanup_image()


if __name__ == "__main__":
    main()
