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

from corral.backup import yamlfile
from corral.instance.drivers import lxclayout

log = logging.getLogger(__name__)


def _snap_link(root: str, vol: str) -> str:
    return os.path.join(root, "snapshots", vol)


def sync(instances, inst) -> None:
    """Create or repoint the links of one instance (moving an old-layout directory over)."""
    vol = instances.volume_name(inst.project, inst.name)
    pool = instances.d.pools.pool(inst.pool)
    kw = instances.instance(inst).pool_kw
    if kw:   # a VM: LXD's virtual-machines/<name> and virtual-machines-snapshots/<name> links
        _vm_links(instances, pool, vol, kw)
        return
    if pool.has_instance(vol):
        lxclayout.link(instances.driver.lxcpath, instances.driver.logpath, instances.driver_name(inst.project, inst.name),
                       pool.instance_path(vol))
    _point(_snap_link(instances.d.paths.root, vol), pool.instance_snapshots_path(vol)
           if pool.has_instance_snapshots(vol) else None)


def _point(link: str, dest: str | None) -> None:
    """`link` made (atomically) or repointed to `dest`; removed when dest is None."""
    if dest is None:
        if os.path.islink(link):
            os.unlink(link)
        return
    if os.path.islink(link) and os.readlink(link) == dest:
        return
    os.makedirs(os.path.dirname(link), mode=0o711, exist_ok=True)
    tmp = os.path.join(os.path.dirname(link), f".{os.path.basename(link)}.link")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(dest, tmp)
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
    vol = instances.volume_name(project, name)
    for link in (_snap_link(instances.d.paths.root, vol), instances.d.paths.join("virtual-machines", vol),
                 instances.d.paths.join("virtual-machines-snapshots", vol)):
        if os.path.islink(link):
            os.unlink(link)


async def write_backup_file(instances, project: str, name: str) -> None:
    """LXD's backup.yaml in the instance volume (what `lxd recover` reads; the format is
    instance/backup_yaml.py's). Rewritten whenever the instance, its snapshots or its profiles change;
    a failure is logged, never fatal (the database is the truth)."""
    from corral.instance import backup_yaml   # noqa: PLC0415 - backup_yaml imports the instance layer

    try:
        inst = await instances.load(project, name)
        if not inst.local or not instances.d.pools.available(inst.pool):
            return   # another member's instance: its member writes the file
        snaps = await instances.snapshots(inst)
        async with instances.db.session() as tx:
            profiles = await instances._profiles(tx, project, inst.rec["profiles"])
        pool = await instances.d.pools.get(inst.pool)
        status = await asyncio.to_thread(instances.status, inst)
    except Exception:   # noqa: BLE001 - a record that cannot be loaded keeps its last file
        log.debug("backup.yaml of %s skipped", name, exc_info=True)
        return
    doc = backup_yaml.render(instances, inst, status, snaps, pool, profiles)
    await asyncio.to_thread(write_doc, instances, inst, doc)


def _vm_links(instances, pool, vol: str, kw: dict) -> None:
    for top, target, present in (("virtual-machines", lambda: pool.instance_path(vol, **kw),
                                  lambda: pool.has_instance(vol, **kw)),
                                 ("virtual-machines-snapshots", lambda: pool.instance_snapshots_path(vol, **kw),
                                  lambda: pool.has_instance_snapshots(vol, **kw))):
        _point(instances.d.paths.join(top, vol), target() if present() else None)


def write_doc(instances, inst, doc: dict) -> None:
    """Write one rendered backup.yaml into the instance's volume (unchanged content: not rewritten)."""
    vol = instances.volume_name(inst.project, inst.name)
    spool = instances.d.pools.pool(inst.pool)
    kw = instances.instance(inst).pool_kw
    try:
        if spool.has_instance(vol, **kw):
            yamlfile.write_file(os.path.join(spool.instance_path(vol, **kw), yamlfile.FILENAME), doc)
    except OSError:
        log.warning("could not write backup.yaml of instance %s", inst.name, exc_info=True)
