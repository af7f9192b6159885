"""Start-up reconciliation of instance leftovers a crashed daemon (kill -9, power loss) left behind.

Storage leftovers (half-made or half-deleted volumes and snapshots) are storage/reconcile.py's; this
module handles the rest, the same way: fix what can be fixed, report every action in /1.0/warnings.

- A running container frozen by a snapshot (a consistent copy freezes the processes while the
  volume is copied) stays frozen when the daemon dies mid-copy. Before freezing, the daemon writes
  a marker `$CORRAL_DIR/markers/freeze.<container>` and removes it after thawing; at start, a
  container that has a marker and is frozen is thawed. A container the user froze (`lxc pause`)
  has no marker and stays frozen.
- A deleted instance is removed from the records first, then from disk; a crash in between leaves
  `logs/<name>/`, `backups/instances/<name>/` and liblxc's `containers/<name>/` with no instance:
  they are removed.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil

log = logging.getLogger(__name__)

THAWED = "Instance unfrozen after a crash"
# One type per kind of leftover: a warning is unique per (type, entity), so they do not overwrite
# each other when one interrupted deletion left several.
LEFTOVER_LOGS = "Leftover instance logs removed"
LEFTOVER_BACKUPS = "Leftover instance backups removed"
LEFTOVER_DEFINITION = "Leftover container definition removed"


def _marker(paths, dname: str) -> str:
    return paths.join("markers", f"freeze.{dname}")


@contextlib.contextmanager
def freeze_marker(paths, dname: str):
    """Mark `dname` as frozen by the daemon for the duration of the block (written durably first)."""
    path = _marker(paths, dname)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _ls(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def _instance_url(inst) -> str:
    return f"/1.0/instances/{inst.name}" + ("" if inst.project == "default" else f"?project={inst.project}")


async def reconcile_instances(daemon) -> list[str]:
    """Thaw containers left frozen by an interrupted snapshot and remove the files of instances whose
    deletion was interrupted. Returns the messages reported (also raised as warnings)."""
    instances = daemon.instances
    driver = instances.driver
    by_dname = {instances.driver_name(i.project, i.name): i for i in await instances.load_local(None)}
    vols = {instances.volume_name(i.project, i.name) for i in by_dname.values()}
    found: list[tuple[str, str, str]] = []   # (warning type, entity url, message)

    def scan() -> None:
        mdir = daemon.paths.join("markers")
        for e in _ls(mdir):
            if not e.startswith("freeze."):
                continue
            dname, inst = e[len("freeze."):], by_dname.get(e[len("freeze."):])
            try:
                if inst is not None and driver.status(dname) == "Frozen":
                    driver.unfreeze(dname)
                    found.append((THAWED, _instance_url(inst),
                                  f'Instance "{inst.name}" (project "{inst.project}") was left frozen by a '
                                  "snapshot the daemon did not finish (it stopped during the copy); "
                                  "it was unfrozen"))
                os.unlink(os.path.join(mdir, e))
            except Exception as err:  # noqa: BLE001 - reported, the daemon still starts
                log.exception("thawing %s", dname)
                found.append((THAWED, f"/1.0/instances/{dname}",
                              f'Instance "{dname}" was left frozen by an interrupted snapshot and could not '
                              f"be unfrozen: {err}"))
        for type_, label, base in ((LEFTOVER_LOGS, "log directory", daemon.paths.join("logs")),
                                   (LEFTOVER_BACKUPS, "backups", daemon.paths.join("backups", "instances"))):
            for e in _ls(base):
                p = os.path.join(base, e)
                if e in vols or not os.path.isdir(p) or os.path.islink(p):
                    continue
                shutil.rmtree(p)
                found.append((type_, f"/1.0/instances/{e}",
                              f'Removed the {label} "{os.path.relpath(p, daemon.paths.root)}" of an instance '
                              "that no longer exists (its deletion was interrupted)"))
        for dname in driver.list_defined():
            if dname in by_dname or driver.status(dname) != "Stopped":
                continue
            driver.delete(dname)
            found.append((LEFTOVER_DEFINITION, f"/1.0/instances/{dname}",
                          f'Removed the container configuration "{dname}" of an instance that no longer '
                          "exists (its deletion was interrupted)"))

    try:
        await asyncio.to_thread(scan)
    except Exception as e:  # noqa: BLE001 - reported, the daemon still starts
        log.exception("reconciling instances")
        found.append(("Instance reconciliation failed", "", f"Reconciling instance leftovers failed: {e}"))
    for type_, url, msg in found:
        log.warning("%s", msg)
        await daemon.warnings.raise_(type_, msg, severity="low", entity_url=url)
    return [m for _, _, m in found]
