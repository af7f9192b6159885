"""The data directory as LXD lays it out, for instances:

    containers/<vol>  -> storage-pools/<pool>/containers/<vol>            (liblxc's lxcpath entry)
    snapshots/<vol>   -> storage-pools/<pool>/containers-snapshots/<vol>  (once it has snapshots)
    logs/<vol>/       lxc.conf, lxc.log, console.log

<vol> is the instance name, prefixed `<project>_` outside the default project. The pool's
directories stay root-only (storage/perms.py), so the links give nobody else a way in.
Blocking functions: run them in a thread.
"""
from __future__ import annotations

import asyncio
import logging
import os

from corral.instance.drivers import lxclayout

log = logging.getLogger(__name__)


def _snap_link(root: str, vol: str) -> str:
    return os.path.join(root, "snapshots", vol)


def sync(instances, inst) -> None:
    """Create or repoint the links of one instance (moving an old-layout directory over)."""
    vol = instances.volume_name(inst.project, inst.name)
    drv = instances.d.pools.driver(inst.pool)
    target = drv.instance_dir(vol)
    if os.path.isdir(target):
        lxclayout.link(instances.driver.lxcpath, instances.driver.logpath, instances.driver_name(inst.project, inst.name),
                       target)
    snaps = os.path.dirname(drv.snapshot_dir(vol, "x"))
    link = _snap_link(instances.d.paths.root, vol)
    if not os.path.isdir(snaps):
        if os.path.islink(link):
            os.unlink(link)
        return
    if os.path.islink(link) and os.readlink(link) == snaps:
        return
    os.makedirs(os.path.dirname(link), mode=0o711, exist_ok=True)
    tmp = os.path.join(os.path.dirname(link), f".{vol}.link")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(snaps, tmp)
    os.replace(tmp, link)


PATCH = "corral_lxd_data_dir_layout"


def record_patch(instances) -> None:
    """Note in the local `patches` table that this data dir is in LXD's layout (an older one is moved
    over by the sync() of every instance at this start)."""
    local = instances.db.local
    if local is not None and PATCH not in local.patches():
        old = [e for e in _ls(instances.driver.lxcpath)
               if os.path.isdir(os.path.join(instances.driver.lxcpath, e))
               and not os.path.islink(os.path.join(instances.driver.lxcpath, e))]
        log.info("data directory layout: LXD's (%d old-layout container directories to move)", len(old))
        local.add_patch(PATCH)


def _ls(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def remove(instances, project: str, name: str) -> None:
    """Drop the snapshots link of a deleted or renamed instance (the driver drops containers/<vol>)."""
    link = _snap_link(instances.d.paths.root, instances.volume_name(project, name))
    if os.path.islink(link):
        os.unlink(link)


async def write_backup_file(instances, project: str, name: str) -> None:
    """LXD's backup.yaml in the instance volume (what `lxd recover` reads): the instance, its
    snapshots, its pool, profiles and volume, as the API shows them. Rewritten whenever one of them
    changes; a failure is logged, never fatal (the database is the truth)."""
    import yaml   # noqa: PLC0415 - only needed here

    from corral.db.queries import profiles as qp   # noqa: PLC0415
    try:
        inst = await instances.load(project, name)
        snaps = await instances.snapshots(inst)
        async with instances.db.session() as tx:
            profiles = [p for p in [await qp.get(tx, project, n) for n in inst.rec["profiles"]] if p]
        pool = await instances.d.pools.get(inst.pool)
    except Exception:   # noqa: BLE001 - a record that cannot be loaded keeps its last file
        log.debug("backup.yaml of %s skipped", name, exc_info=True)
        return
    vol = instances.volume_name(project, name)
    data = {
        "container": instances.render(inst),
        "snapshots": [instances.render_snapshot(inst, s) for s in snaps],
        "pool": pool,
        "profiles": [dict(p, used_by=[]) for p in profiles],
        "volume": {"name": name, "type": "container", "description": "", "config": {}, "content_type": "filesystem",
                   "location": "none", "project": project, "used_by": [], "pool": inst.pool},
        "volume_snapshots": [{"name": s["name"], "description": "", "config": {}, "content_type": "filesystem",
                              "created_at": s["created_at"], "expires_at": s["expires_at"]} for s in snaps],
    }
    path = os.path.join(instances.d.pools.driver(inst.pool).instance_dir(vol), "backup.yaml")

    def write() -> None:
        if not os.path.isdir(os.path.dirname(path)):
            return
        with open(path + ".tmp", "w") as f:
            yaml.safe_dump(data, f, default_flow_style=False, sort_keys=True)
        os.chmod(path + ".tmp", 0o600)
        os.replace(path + ".tmp", path)

    try:
        await asyncio.to_thread(write)
    except OSError:
        log.warning("could not write backup.yaml of instance %s", name, exc_info=True)
