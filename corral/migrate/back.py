"""Going back to LXD: the teardown of corrald's side (shared by the rollback of a failed migration) and
`corral migrate-from-lxd --back`, which undoes a migration that succeeded from the record it left in
<corral-dir>/migrated-from-lxd.json (docs/migrate-from-lxd.md, "Going back")."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from corral.migrate import datamove
from corral.migrate.daemons import Corrald, Lxd
from corral.network import nft
from corral.storage import lxd_takeover

RECORD = "migrated-from-lxd.json"


def kill_leftovers(corral_dir: str) -> None:
    """What corrald left running from its directory (dnsmasq: it outlives the daemon) and its nftables
    table per bridge (LXD makes its own rules again)."""
    netdir = os.path.join(corral_dir, "networks")
    for name in sorted(os.listdir(netdir)) if os.path.isdir(netdir) else []:
        try:
            nft.delete(name)
        except Exception:   # no table for it (Corral made none, or nft is missing): nothing to remove
            pass
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if corral_dir + "/" in cmd and "dnsmasq" in cmd:
                subprocess.run(["kill", pid], capture_output=True)
                for _ in range(50):
                    if not os.path.exists(f"/proc/{pid}"):
                        break
                    time.sleep(0.02)


def stop_corral_side(corrald: Corrald, corral_dir: str, modes: dict, loops: dict) -> list[tuple[str, str]]:
    """Stop corrald's instances and corrald, put LXD's pool directory modes back, stop corrald's dnsmasq,
    unmount everything under corral_dir. Returns the instances that were running."""
    running: list[tuple[str, str]] = []
    try:
        if corrald.api.alive():
            try:
                running = [pn for pn, st in corrald.statuses().items() if st != "Stopped"]
                with ThreadPoolExecutor(max(1, min(8, len(running)))) as ex:
                    list(ex.map(lambda pn: corrald.set_state(pn[0], pn[1], "stop", timeout=10), running))
            finally:
                corrald.shutdown(timeout=60)
    finally:
        try:   # LXD's modes on the pools' directories (Corral keeps them tighter)
            lxd_takeover.restore_modes(corral_dir, modes, loops)
        finally:
            kill_leftovers(corral_dir)
            datamove.unmount_all(corral_dir)
    return running


def write_record(path: str, lxd_dir: str, group: str, moved: list[str], modes: dict, network_files: dict,
                 loops: dict) -> None:
    doc = {"lxd_dir": lxd_dir, "group": group, "moved": moved, "modes": modes, "loop_pools": loops,
           "network_files": {k: [base64.b64encode(d).decode(), m] for k, (d, m) in network_files.items()}}
    with open(path, "w") as f:
        json.dump(doc, f)
    os.chmod(path, 0o600)


def go_back(lxd_dir: str, corral_dir: str, out=print) -> int:
    lxd_dir, corral_dir = os.path.abspath(lxd_dir), os.path.abspath(corral_dir)
    try:
        with open(os.path.join(corral_dir, RECORD)) as f:
            rec = json.load(f)
    except FileNotFoundError:
        out(f"Error: {corral_dir} holds no record of a migration from LXD ({RECORD})")
        return 1
    if os.path.abspath(rec["lxd_dir"]) != lxd_dir:
        out(f"Error: {corral_dir} was migrated from {rec['lxd_dir']}, not {lxd_dir}")
        return 1
    lxd, corrald = Lxd(lxd_dir), Corrald(corral_dir)
    if lxd.api.alive():
        out(f"Error: LXD already runs on {lxd.api.socket}")
        return 1
    modes = {k: tuple(v) for k, v in rec["modes"].items()}
    t0 = time.monotonic()
    out("=> stopping corrald and its instances")
    running = stop_corral_side(corrald, corral_dir, modes, rec["loop_pools"])
    out("=> putting LXD's data back")
    datamove.restore_files(os.path.join(corral_dir, "networks"),
                           {k: (base64.b64decode(d), m) for k, (d, m) in rec["network_files"].items()})
    j = datamove.Journal()
    datamove.rewrite_links(j, corral_dir, corral_dir, lxd_dir)
    datamove.rewrite_files(j, corral_dir, corral_dir, lxd_dir)
    for name in rec["moved"]:
        src = os.path.join(corral_dir, name)
        if os.path.lexists(src):
            os.rename(src, os.path.join(lxd_dir, name))
    kept = f"{corral_dir}.back-{time.strftime('%Y%m%d%H%M%S')}"
    os.rename(corral_dir, kept)
    out(f"   Corral's own files (its database, logs) are kept in {kept}")
    out("=> starting LXD")
    lxd.start(rec["group"], os.path.join(lxd_dir, "logs", "lxd.log"))
    known = lxd.statuses()
    for pn in running:
        if pn not in known:
            out(f"   {pn[1]} (project {pn[0]}) is not in LXD's database (made under Corral?): not started")
        elif known[pn] != "Running":
            lxd.set_state(pn[0], pn[1], "start")
    out(f"Back on LXD in {time.monotonic() - t0:.2f} s")
    return 0
