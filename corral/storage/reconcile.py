"""Start-up reconciliation of storage records and on-disk volumes.

Volumes are made on disk before they are recorded and unrecorded before they are removed, so
after a crash (kill -9, power loss) a pool may hold volumes nobody records (half-made copies,
`*.partial`, interrupted restores) but a record should never lack its volume. At start the daemon
removes the unrecorded volumes (except instance volumes whose backup.yaml names them: records lost,
recoverable with `corrald recover`), finishes interrupted restores, and reports what it found in
/1.0/warnings; records whose volume is missing are reported, never silently dropped.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re

from corral.db.queries import images as qi
from corral.db.queries import storage as q
from corral.backup import yamlfile
from corral.storage import spares
from corral.storage.drivers.base import PARTIAL

log = logging.getLogger(__name__)

LEFTOVER = "Leftover storage volume removed"
MISSING = "Storage volume missing"
RECOVERABLE = "Unrecorded instance volume kept for recovery"
_FP = re.compile(r"^[0-9a-f]{64}$")


def _ls(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


async def reconcile(daemon) -> list[str]:
    """Returns the messages reported (also raised as warnings)."""
    pools, instances = daemon.pools, daemon.instances
    found: list[tuple[str, str, str]] = []   # (warning type, entity url, message)
    # Every instance's volume is kept (never removed as unrecorded); only this member's instances'
    # volumes must be on its pools (the others' are on their members').
    insts = await instances.load_all(None)
    async with daemon.db.session() as tx:
        vols = await q.all_volumes(tx, "custom")
        vsnaps = await q.all_volume_snapshots(tx)
        fingerprints = await qi.all_fingerprints(tx)
    daemon.volumes.note_volumes(vols)
    isnaps = await instances.snapshots_of_all()
    for pool in pools.names():
        if not pools.available(pool):
            continue
        drv = pools.pool(pool).driver
        purl = f"/1.0/storage-pools/{pool}"
        want_ct: dict[str, set[str]] = {}
        want_vm: dict[str, set[str]] = {}
        elsewhere: set[str] = set()
        for inst in insts:
            try:
                if inst.pool != pool:
                    continue
            except Exception:  # noqa: BLE001 - an instance without a root disk has no volume here
                continue
            vol = instances.volume_name(inst.project, inst.name)
            snaps = isnaps.get(inst.rec["id"], [])
            (want_vm if inst.type == "virtual-machine" else want_ct)[vol] = {s["name"] for s in snaps}
            if not inst.local:
                elsewhere.add(vol)
        want_cu: dict[str, set[str]] = {}
        by_id = {v["id"]: v for v in vols if v["pool"] == pool}
        for v in by_id.values():
            want_cu[f"{v['project']}_{v['name']}"] = set()
        for s in vsnaps:
            if s["volume_id"] in by_id:
                v = by_id[s["volume_id"]]
                want_cu[f"{v['project']}_{v['name']}"].add(s["name"])
        layout = (("containers", "containers-snapshots", want_ct, "container"),
                  ("virtual-machines", "virtual-machines-snapshots", want_vm, "virtual-machine"),
                  ("custom", "custom-snapshots", want_cu, "custom"))

        def scan() -> list[tuple[str, str, str]]:
            out = []
            for top, snaps_dir, want, kind in layout:
                base = os.path.join(drv.path, top)
                # An interrupted restore: the live volume was moved aside, put it back.
                for e in _ls(base):
                    if e.endswith(".restore-old") and not os.path.lexists(os.path.join(base, e[:-12])):
                        os.rename(os.path.join(base, e), os.path.join(base, e[:-12]))
                for e in _ls(base):
                    if kind != "custom" and e not in want and not e.endswith(PARTIAL) and \
                            yamlfile.recoverable(os.path.join(base, e), e, instances.volume_name):
                        want[e] = set(_ls(os.path.join(drv.path, snaps_dir, e)))
                        out.append((RECOVERABLE, f"{purl}/volumes/{kind}/{e}",
                                    f'Kept the unrecorded {kind} volume "{e}" on pool "{pool}": it has a '
                                    "backup.yaml of its own (its records were lost); `corrald recover` "
                                    "brings it back"))
                for e in _ls(base):
                    if e not in want:
                        drv.remove_leftover(os.path.join(base, e))
                        out.append((LEFTOVER, f"{purl}/volumes/{kind}/{e}",
                                    f'Removed unrecorded {kind} volume "{e}" from pool "{pool}"'))
                for vol, snaps in want.items():
                    if not os.path.isdir(os.path.join(base, vol)) and not (kind != "custom" and vol in elsewhere):
                        out.append((MISSING, f"{purl}/volumes/{kind}/{vol}",
                                    f'The {kind} volume "{vol}" is recorded but missing from pool "{pool}"'))
                sbase = os.path.join(drv.path, snaps_dir)
                for vol in _ls(sbase):
                    for s in _ls(os.path.join(sbase, vol)):
                        if vol not in want or s not in want[vol]:
                            drv.remove_leftover(os.path.join(sbase, vol, s))
                            out.append((LEFTOVER, f"{purl}/volumes/{kind}/{vol}/snapshots/{s}",
                                        f'Removed unrecorded snapshot "{vol}/{s}" from pool "{pool}"'))
                    if vol not in want and not _ls(os.path.join(sbase, vol)):
                        drv.remove_leftover(os.path.join(sbase, vol))
            ibase = os.path.join(drv.path, "images")
            for e in _ls(ibase):
                if e.endswith(PARTIAL) or e.startswith(".") or (_FP.match(e) and e not in fingerprints):
                    drv.remove_leftover(os.path.join(ibase, e))
                    out.append((LEFTOVER, f"{purl}/volumes/image/{e}",
                                f'Removed unrecorded image volume "{e}" from pool "{pool}"'))
            spares.reconcile_spares(drv, set(fingerprints))   # a cache: tidied, not reported
            return out

        try:
            found += await asyncio.to_thread(scan)
        except Exception as e:  # noqa: BLE001 - reported, the daemon still starts
            log.exception("reconciling pool %s", pool)
            found.append(("Storage pool reconciliation failed", purl, f'Pool "{pool}": {e}'))
    for type_, url, msg in found:
        log.warning("%s", msg)
        await daemon.warnings.raise_(type_, msg, severity="low", entity_url=url)
    return [m for _, _, m in found]
