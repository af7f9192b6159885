#!/usr/bin/env python3
"""Image copy throughput on loopback: corrald to corrald, beside the real LXD 5.0.2 doing the same.

One source corrald (`src`) serves a busybox-based image carrying --size MiB of random bytes (so
compression cannot shrink it), unified and split (metadata + squashfs), public, over HTTPS: as
simplestreams (/streams/v1/...) and as the LXD protocol. A destination corrald (`dst`) and the real
LXD (`lxd`) each pull it with `lxc image copy REMOTE:ALIAS local:` (the image deleted between runs);
the LXD also serves an image of the same size over the LXD protocol, so corrald and LXD are compared
as clients (same source) and as servers (same client). (LXD to LXD would need a second LXD: one
LXD cannot pull from itself.) Figures: medians of --runs copies, MB/s
(10^6 bytes; the cases interleaved run by run), and the ratios corrald / LXD (above 1: corrald faster).

Note what is timed: the whole `lxc image copy`, i.e. transfer, checksum and import. corrald
validates and unpacks an image into the default pool when it imports it; LXD stores the files and
unpacks on first use, so corrald's figure includes work LXD defers.

    .venv/bin/python bench/image_copy.py [--size 100] [--runs 3] [--no-lxd] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench import LXD  # noqa: E402
from helpers import free_port, initialised_corrald  # noqa: E402
import streamsimg  # noqa: E402


class Client:
    """The real lxc with its own config dir, its local remote one daemon's socket."""

    def __init__(self, conf: str, env: dict):
        self.env = dict(env, HOME=conf, LXD_CONF=os.path.join(conf, "lxc"))
        os.makedirs(os.path.join(conf, "lxc", "servercerts"), exist_ok=True)

    def __call__(self, *args, check=True):
        r = subprocess.run(["lxc", *args], env=self.env, capture_output=True, text=True, timeout=900)
        if check and r.returncode != 0:
            raise RuntimeError(f"lxc {args}: {r.stderr}")
        return r


def add_remotes(c: Client, conf: str, name: str, url: str, cert: str, streams: bool) -> None:
    c("remote", "add", f"{name}-lx", url, "--accept-certificate", "--public")
    if streams:
        c("remote", "add", f"{name}-ss", url, "--protocol", "simplestreams")
        with open(os.path.join(conf, "lxc", "servercerts", f"{name}-ss.crt"), "w") as f:
            f.write(cert)


def copy_times(c: Client, remote: str, alias: str, fp: str, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        c("image", "delete", fp, check=False)
        t0 = time.perf_counter()
        c("image", "copy", f"{remote}:{alias}", "local:")
        out.append(time.perf_counter() - t0)
        c("image", "delete", fp, check=False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100, help="random payload, MiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-lxd", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    use_lxd = not a.no_lxd and shutil.which("lxd") is not None
    work = tempfile.mkdtemp(prefix="corral-bench-copy-", dir="/var/tmp")
    lxd = None
    results: dict[str, dict] = {}
    try:
        images = {"unified": [streamsimg.unified(os.path.join(work, "u"), "bench unified", a.size)],
                  "split": list(streamsimg.split(os.path.join(work, "s"), "bench split", a.size))}
        lxd_images = {"unified": [streamsimg.unified(os.path.join(work, "lu"), "bench unified (LXD)", a.size)],
                      "split": list(streamsimg.split(os.path.join(work, "ls"), "bench split (LXD)", a.size))}
        with initialised_corrald() as src, initialised_corrald() as dst:
            servers = {}
            fps = {}
            for name, d in (("src", src), ("dst", dst)):
                port = free_port()
                d.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{port}"}})
                servers[name] = (f"https://127.0.0.1:{port}", d.get("/1.0").metadata["environment"]["certificate"])
            for kind, files in images.items():
                out = src.lxc("image", "import", *files, "--public", "--alias", f"bench-{kind}").stdout
                fps[kind] = out.strip().split()[-1]
            clients = {"corrald": Client(os.path.join(work, "c-dst"), dst.env)}
            add_remotes(clients["corrald"], os.path.join(work, "c-dst"), "src", *servers["src"], streams=True)
            if use_lxd:
                lxd = LXD().start()
                port = free_port()
                lxd.lxc("config", "set", "core.https_address", f"127.0.0.1:{port}")
                lxd_fps = {}
                for kind, files in lxd_images.items():   # its own fingerprints: it is a destination too
                    out = lxd.lxc("image", "import", *files, "--public", "--alias", f"bench-{kind}").stdout
                    lxd_fps[kind] = out.strip().split()[-1]
                lxd_url = f"https://127.0.0.1:{port}"
                clients["lxd"] = Client(os.path.join(work, "c-lxd"), lxd.env)
                add_remotes(clients["lxd"], os.path.join(work, "c-lxd"), "src", *servers["src"], streams=True)
                for who in ("corrald", "lxd"):
                    add_remotes(clients[who], os.path.join(work, f"c-{'dst' if who == 'corrald' else 'lxd'}"),
                                "lxdsrv", lxd_url, "", streams=False)
            cases = [("corrald", "src-ss", "corrald <- corrald (simplestreams)"),
                     ("corrald", "src-lx", "corrald <- corrald (lxd protocol)")]
            if use_lxd:
                cases += [("lxd", "src-ss", "LXD <- corrald (simplestreams)"),
                          ("lxd", "src-lx", "LXD <- corrald (lxd protocol)"),
                          ("corrald", "lxdsrv-lx", "corrald <- LXD (lxd protocol)")]
            samples: dict[tuple, list[float]] = {}
            for _ in range(a.runs):   # interleaved, so that load from elsewhere spreads over every case
                for kind in images:
                    for who, remote, label in cases:
                        fp = lxd_fps[kind] if remote.startswith("lxdsrv") else fps[kind]
                        samples.setdefault((kind, remote, label), []).extend(
                            copy_times(clients[who], remote, f"bench-{kind}", fp, 1))
            for (kind, remote, label), ts in samples.items():
                t = statistics.median(ts)
                n = sum(os.path.getsize(f) for f in (lxd_images if remote.startswith("lxdsrv") else images)[kind])
                results[f"{label}, {kind}"] = {"seconds": round(t, 3), "MB/s": round(n / t / 1e6, 1)}
    finally:
        if lxd is not None:
            lxd.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(f"image copy over loopback, {a.size} MiB incompressible payload, median of {a.runs}")
    for label, r in results.items():
        print(f"  {label:52s} {r['seconds']:7.2f} s  {r['MB/s']:7.1f} MB/s")
    ratios = {}
    for kind in ("unified", "split"):
        def mbs(label):
            return (results.get(f"{label}, {kind}") or {}).get("MB/s")
        pairs = {"corrald as client (from corrald, lxd protocol): corrald / LXD":
                 ("corrald <- corrald (lxd protocol)", "LXD <- corrald (lxd protocol)"),
                 "corrald as client (from corrald, simplestreams): corrald / LXD":
                 ("corrald <- corrald (simplestreams)", "LXD <- corrald (simplestreams)"),
                 "corrald as server (corrald pulling): corrald / LXD":
                 ("corrald <- corrald (lxd protocol)", "corrald <- LXD (lxd protocol)")}
        for name, (x, y) in pairs.items():
            if mbs(x) and mbs(y):
                ratios[f"{name}, {kind}"] = round(mbs(x) / mbs(y), 2)
    if ratios:
        print("ratios (throughput, above 1: corrald faster)")
        for k, v in ratios.items():
            print(f"  {k:72s} {v:5.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": results, "ratios": ratios, "size_mib": a.size, "runs": a.runs}, f, indent=1)


if __name__ == "__main__":
    main()
