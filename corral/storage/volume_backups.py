"""Custom volume backups (LXD's custom_volume_backup): `lxc storage volume export` / `import`.

Kept like instance backups, under $CORRAL_DIR/backups/custom/<pool>/<volume>/: `<name>.tar` and
`<name>.json` (written last). Tarball layout (LXD's): backup/index.yaml, backup/volume/,
backup/volume-snapshots/<snapshot>/; a block volume's: backup/volume.img and
backup/volume-snapshots/<snapshot>.img (sparse members, restored sparse: corral/backup/tarball.py). Files are stored as they are on disk; the volume's
volatile.idmap.last (kept in the backup's config) says which map they are shifted to, so an import
records it again and the next attach shifts them as needed.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil

from corral import timeutil
from corral.db.queries import storage as q
from corral.errors import BadRequest, Conflict, NotFound, NotImplementedFeature
from corral.backup.format import BackupTarball
from corral.backup.tarball import COMPRESSIONS, write_backup, write_json
from corral.names import check_entity_name
from corral.storage.drivers.base import BLOCK_FILE
from corral.storage.sizes import parse_size
from corral.storage.volume import BLOCK, FILESYSTEM
from corral.storage.volumes import check_volume_config, disk_key, vol_url


class VolumeBackups:
    def __init__(self, daemon):
        self.d = daemon

    def _dir(self, v: dict) -> str:
        return self.d.paths.join("backups", "custom", v["pool"], disk_key(v["project"], v["name"]))

    def _paths(self, v: dict, name: str) -> tuple[str, str]:
        base = os.path.join(self._dir(v), name)
        return base + ".tar", base + ".json"

    def url(self, v: dict, name: str) -> str:
        return vol_url(v["pool"], "custom", f"{v['name']}/backups/{name}", v["project"])

    def list(self, v: dict) -> list[dict]:
        d, out = self._dir(v), []
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.endswith(".json") and os.path.exists(self._paths(v, f[:-5])[0]):
                    with open(os.path.join(d, f)) as fh:
                        out.append(json.load(fh))
        return out

    def get(self, v: dict, name: str) -> dict:
        for b in self.list(v):
            if b["name"] == name:
                return b
        raise NotFound("Storage volume backup not found")

    def tarball(self, v: dict, name: str) -> str:
        self.get(v, name)
        return self._paths(v, name)[0]

    async def create(self, v: dict, body: dict, requestor: dict | None):
        await self.d.restrictions.check_backup(v["project"])
        taken = {b["name"] for b in self.list(v)}
        name = body.get("name") or next(f"backup{n}" for n in range(len(taken) + 1) if f"backup{n}" not in taken)
        check_entity_name("backup", name)
        if name in taken:
            raise Conflict(f'Backup "{name}" already exists')
        compression = body.get("compression_algorithm") or "gzip"
        if compression not in COMPRESSIONS:
            raise BadRequest(f'Unsupported compression algorithm "{compression}"')
        volume_only = bool(body.get("volume_only"))
        expires = body.get("expires_at") or timeutil.ZERO
        record = {"name": name, "created_at": timeutil.now(), "expires_at": expires,
                  "volume_only": volume_only, "optimized_storage": False}
        pool = v["pool"]
        p = self.d.pools.pool(pool)
        vols = self.d.volumes

        async def run(op):
            async with self.d.pools.lock(pool):
                snaps = [] if volume_only else await vols.snapshots(v)
                vol = vols._render(v, "custom", await vols.used_by(pool, v["project"], v["name"]))
                index = {"name": v["name"], "backend": p.driver.name, "pool": pool, "optimized": False,
                         "optimized_header": False, "type": "custom",
                         "snapshots": [s["name"] for s in snaps],
                         "config": {"volume": vol, "volume_snapshots": [vols.render_snapshot(v, s) for s in snaps]}}
                vv = vols.vol(v)
                dirs, blocks = [], []
                if vv.content_type == BLOCK:   # the disks only, snapshots first (as LXD writes them)
                    blocks = [(f"backup/volume-snapshots/{s['name']}.img",
                               await asyncio.to_thread(p.block_device, vv.snapshot(s["name"]))) for s in snaps]
                    blocks.append(("backup/volume.img", await asyncio.to_thread(p.block_device, vv)))
                else:
                    dirs = [("backup/volume", await asyncio.to_thread(p.mount, vv))]
                    dirs += [(f"backup/volume-snapshots/{s['name']}",
                              await asyncio.to_thread(p.mount, vv.snapshot(s["name"]))) for s in snaps]
                tar, meta = self._paths(v, name)
                await asyncio.to_thread(write_backup, tar, meta, index, dirs, COMPRESSIONS[compression], record,
                                        None, blocks)
            self.d.events.lifecycle("storage-volume-backup-created", self.url(v, name), project=v["project"],
                                    requestor=requestor)

        return self.d.operations.create(project=v["project"], description="Backing up storage volume",
                                        resources={"storage_volumes": [vol_url(pool, "custom", v["name"], v["project"])],
                                                   # lxc 5.0 strips exactly "/1.0/backups/" here
                                                   "backups": [f"/1.0/backups/{name}"]},
                                        run=run)

    def rename(self, v: dict, name: str, new: str) -> None:
        check_entity_name("backup", new)
        rec = self.get(v, name)
        if any(b["name"] == new for b in self.list(v)):
            raise Conflict(f'Backup "{new}" already exists')
        old_tar, old_meta = self._paths(v, name)
        new_tar, new_meta = self._paths(v, new)
        os.rename(old_tar, new_tar)
        rec["name"] = new
        write_json(new_meta, rec)
        os.unlink(old_meta)

    def delete(self, v: dict, name: str) -> None:
        tar, meta = self._paths(v, name)
        self.get(v, name)
        os.unlink(meta)
        os.unlink(tar)

    def delete_all(self, v: dict) -> None:
        shutil.rmtree(self._dir(v), ignore_errors=True)

    def renamed(self, v: dict, new: str) -> None:
        """The volume was renamed: its backups follow it."""
        old, dst = self._dir(v), self._dir({**v, "name": new})
        if os.path.isdir(old) and not os.path.lexists(dst):
            os.rename(old, dst)

    # ---- import -------------------------------------------------------------------------------

    async def import_volume(self, pool: str, project: str, tar_path: str, name: str | None, requestor):
        """POST .../volumes/custom with a backup tarball: check it now (a 400, nothing changed),
        restore it in the returned operation. The tarball file is removed in any case."""
        try:
            bt = await asyncio.to_thread(BackupTarball, tar_path)
        except BaseException:
            os.unlink(tar_path)
            raise
        try:
            rec, snaps = await self._plan(pool, project, bt, name)
        except BaseException:
            bt.close()
            os.unlink(tar_path)
            raise
        url = vol_url(pool, "custom", rec["name"], project)

        async def run(op):
            try:
                await self._restore(bt, rec, snaps)
            finally:
                bt.close()
                os.unlink(tar_path)
            self.d.events.lifecycle("storage-volume-created", url, project=project, requestor=requestor)

        try:
            return self.d.operations.create(project=project, description="Restoring custom volume backup",
                                            resources={"storage_volumes": [url]}, run=run)
        except BaseException:
            bt.close()
            os.unlink(tar_path)
            raise

    async def _plan(self, pool: str, project: str, bt: BackupTarball, name: str | None):
        info = await asyncio.to_thread(bt.info, "backup/volume/backup.yaml")
        if info.kind != "custom" or info.volume is None:
            raise BadRequest("The backup is not a custom volume backup (use `lxc import` for instances)")
        if info.optimized:
            raise NotImplementedFeature("importing optimized storage backups")
        src = info.volume
        content_type = src.get("content_type") or FILESYSTEM
        if content_type not in (FILESYSTEM, BLOCK):
            raise BadRequest(f'Invalid content type "{content_type}"')
        name = check_entity_name("storage volume", name or info.name)
        self.d.volumes._pool(pool)
        async with self.d.db.session() as tx:
            if await q.volume(tx, pool, project, "custom", name) is not None:
                raise Conflict("Volume by that name already exists")
        cfg = check_volume_config({str(k): str(val) for k, val in (src.get("config") or {}).items()})
        rec = {"pool": pool, "project": project, "type": "custom", "name": name,
               "description": str(src.get("description") or ""), "config": cfg, "content_type": content_type,
               "created_at": str(src.get("created_at") or "") if src.get("created_at") not in (None, timeutil.ZERO)
               else timeutil.now()}
        if content_type == BLOCK:
            if "backup/volume.img" not in bt.by_path:
                raise BadRequest("Invalid backup tarball: no backup/volume.img")
        elif "backup/volume" not in bt.by_path and not bt.names_below("backup/volume"):
            raise BadRequest("Invalid backup tarball: no backup/volume/")
        stored = bt.names_below("backup/volume-snapshots")
        by_name = {s.get("name"): s for s in info.volume_snapshots}
        snaps = []
        for sname in info.snapshots:
            check_entity_name("snapshot", sname)
            if (f"{sname}.img" if content_type == BLOCK else sname) not in stored:
                raise BadRequest(f'Invalid backup tarball: no data for snapshot "{sname}"')
            s = by_name.get(sname) or {}
            scfg = {str(k): str(val) for k, val in (s.get("config") or {}).items()}
            # LXD renders a snapshot's config merged with the volume's: keep only what differs
            scfg = {k: val for k, val in scfg.items() if cfg.get(k) != val}
            snaps.append({"name": sname, "description": str(s.get("description") or ""), "config": scfg,
                          "created_at": str(s.get("created_at") or timeutil.now()),
                          "expires_at": str(s.get("expires_at") or timeutil.ZERO)})
        return rec, snaps

    async def _restore(self, bt: BackupTarball, rec: dict, snaps: list[dict]) -> None:
        pool = self.d.pools.pool(rec["pool"])
        vol = self.d.volumes.vol(rec)
        async with self.d.pools.lock(rec["pool"]):
            if await asyncio.to_thread(pool.exists, vol) or await asyncio.to_thread(pool.snapshot_names, vol):
                raise Conflict("Volume by that name already exists")
            try:
                fill = _disk_filler if vol.content_type == BLOCK else _filler
                await asyncio.to_thread(pool.create_from_backup, vol, fill(bt, "backup/volume"),
                                        [(s["name"], fill(bt, f"backup/volume-snapshots/{s['name']}"))
                                         for s in snaps])
                if rec["config"].get("size"):
                    await asyncio.to_thread(pool.set_quota, vol, parse_size(rec["config"]["size"]))
                async with self.d.db.transaction() as tx:
                    if not await q.create_custom_volume(tx, rec, snaps):
                        raise Conflict("Volume by that name already exists")
            except BaseException:
                await asyncio.to_thread(pool.delete, vol)
                raise
            if vol.content_type == BLOCK:
                self.d.volumes.note_block(rec["pool"], rec["project"], rec["name"])


def _disk_filler(bt: BackupTarball, prefix: str):
    """Fill a new block volume's disk from the member `<prefix>.img` (of the size it had)."""
    def fill(path: str) -> None:
        bt.extract_disk(prefix + ".img", os.path.join(path, BLOCK_FILE))
    return fill


def _filler(bt: BackupTarball, prefix: str):
    """Fill a new volume (an empty directory) from the members below `prefix`."""
    def fill(path: str) -> None:
        bt.extract(prefix, os.path.dirname(path), os.path.basename(path))
        bt.apply_root(prefix, path)
    return fill
