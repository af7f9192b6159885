"""Instance backups (LXD's container_backup): a tarball of the instance volume and its snapshots.

On disk, under $CORRAL_DIR/backups/instances/<volume>/: `<name>.tar.gz` plus `<name>.json` (its
record). The JSON is written only after the tarball is complete, so a crash leaves at worst an
orphan temp file, never a listed backup without data. Tarball layout (as LXD's): backup/index.yaml,
backup/container/ (metadata.yaml, templates/, rootfs/), backup/snapshots/<snapshot>/.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil

import yaml

from corral import timeutil
from corral.errors import BadRequest, Conflict, NotFound
from corral.backup.tarball import COMPRESSIONS, write_backup as _write_backup, write_json as _write_json  # noqa: F401
from corral.names import check_entity_name



class Backups:
    def __init__(self, instances):
        self.instances = instances
        self.d = instances.d

    def _dir(self, inst) -> str:
        return self.d.paths.join("backups", "instances", self.instances.volume_name(inst.project, inst.name))

    def _paths(self, inst, name: str) -> tuple[str, str]:
        base = os.path.join(self._dir(inst), name)
        return base + ".tar", base + ".json"

    def url(self, inst, name: str) -> str:
        return f"/1.0/instances/{inst.name}/backups/{name}"

    def list(self, inst) -> list[dict]:
        d = self._dir(inst)
        out = []
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.endswith(".json"):
                    tar, meta = self._paths(inst, f[:-5])
                    if os.path.exists(tar):
                        with open(meta) as fh:
                            out.append(json.load(fh))
        return out

    def get(self, inst, name: str) -> dict:
        for b in self.list(inst):
            if b["name"] == name:
                return b
        raise NotFound("Backup not found")

    def tarball(self, inst, name: str) -> str:
        self.get(inst, name)
        return self._paths(inst, name)[0]

    # ---- create ---------------------------------------------------------------------------

    async def create(self, inst, body: dict, requestor: dict | None):
        await self.d.restrictions.check_backup(inst.project)
        taken = {b["name"] for b in self.list(inst)}
        name = body.get("name") or next(f"backup{n}" for n in range(len(taken) + 1) if f"backup{n}" not in taken)
        check_entity_name("backup", name)
        if "/" in name:
            raise BadRequest("Backup names may not contain slashes")
        if name in taken:
            raise Conflict(f'Backup "{name}" already exists')
        compression = (body.get("compression_algorithm")
                       or self.d.project_setting(inst.project, "backups.compression_algorithm") or "gzip")
        if compression not in COMPRESSIONS:
            raise BadRequest(f'Unsupported compression algorithm "{compression}"')
        instance_only = bool(body.get("instance_only") or body.get("container_only"))
        if body.get("optimized_storage"):
            raise BadRequest("Optimized storage backups are not supported by the dir pool driver")
        record = {"name": name, "created_at": timeutil.now(), "expires_at": body.get("expires_at") or timeutil.ZERO,
                  "instance_only": instance_only, "container_only": instance_only, "optimized_storage": False}
        project, iname = inst.project, inst.name

        async def run(op):
            async with self.instances.lock(project, iname):
                cur = await self.instances.load(project, iname)
                snaps = [] if instance_only else await self.instances.snapshots(cur)
                pool = self.d.pools.pool(cur.pool)
                driver = pool.info().name
                vol = self.instances.volume_name(cur.project, cur.name)
                config = _backup_config(cur, driver, _stored_as_is(self.instances.render(cur, "Stopped")),
                                        [_stored_as_is(self.instances.render_snapshot(cur, s)) for s in snaps])
                vm = (cur.rec.get("type") or "container") == "virtual-machine"
                index = {"name": iname, "backend": driver, "pool": cur.pool,
                         "snapshots": [s["name"] for s in snaps], "optimized": False,
                         "optimized_header": False, "type": "virtual-machine" if vm else "container",
                         "config": config}
                blocks = None
                if vm:   # LXD's VM layout: backup/virtual-machine/ + virtual-machine.img (storage/vmbackup.py)
                    from corral.storage import vmbackup
                    dirs, blocks = await asyncio.to_thread(vmbackup.backup_sources, pool, vol,
                                                           [s["name"] for s in snaps])
                    top = vmbackup.PREFIX
                else:
                    dirs = [("backup/container", await asyncio.to_thread(pool.instance_path, vol))]
                    dirs += [(f"backup/snapshots/{s['name']}",
                              await asyncio.to_thread(pool.instance_path, vol, s["name"])) for s in snaps]
                    top = "backup/container"
                # LXD keeps this copy of the config in every instance volume (and rewrites it on import)
                files = {f"{top}/backup.yaml": yaml.safe_dump(config, default_flow_style=False).encode()}
                tar, meta = self._paths(cur, name)
                await asyncio.to_thread(_write_backup, tar, meta, index, dirs, COMPRESSIONS[compression], record,
                                        files, blocks)
            self.d.events.lifecycle("instance-backup-created", self.url(inst, name), project=project,
                                    requestor=requestor)

        from corral.instance.manager import resources
        # LXD names the backup as /1.0/backups/<name> here; lxc 5.0 strips exactly that prefix.
        return self.d.operations.create(project=project, description="Backing up instance",
                                        resources={**resources(iname, project), "backups": [f"/1.0/backups/{name}"]},
                                        run=run)

    def rename(self, inst, name: str, new: str) -> None:
        check_entity_name("backup", new)
        rec = self.get(inst, name)
        if any(b["name"] == new for b in self.list(inst)):
            raise Conflict(f'Backup "{new}" already exists')
        old_tar, old_meta = self._paths(inst, name)
        new_tar, new_meta = self._paths(inst, new)
        os.rename(old_tar, new_tar)
        rec["name"] = new
        _write_json(new_meta, rec)
        os.unlink(old_meta)

    def delete(self, inst, name: str) -> None:
        tar, meta = self._paths(inst, name)
        self.get(inst, name)
        os.unlink(meta)
        os.unlink(tar)

    def delete_all(self, project: str, name: str) -> None:
        shutil.rmtree(self.d.paths.join("backups", "instances", self.instances.volume_name(project, name)),
                      ignore_errors=True)


def _backup_config(inst, driver: str, container: dict, snapshots: list[dict]) -> dict:
    """The `config` of index.yaml and backup.yaml, in LXD 5.0's shape."""
    return {"container": container, "snapshots": snapshots,
            "pool": {"name": inst.pool, "driver": driver, "config": {}, "description": "", "status": "Created",
                     "locations": [inst.location], "used_by": []},
            "volume": {"name": inst.name, "type": "container", "config": {}, "description": "",
                       "content_type": "filesystem", "project": inst.project, "location": inst.location,
                       "used_by": [], "created_at": container.get("created_at") or timeutil.ZERO},
            "volume_snapshots": [{"name": s["name"], "config": {}, "description": s.get("description") or "",
                                  "content_type": "filesystem", "created_at": s.get("created_at") or timeutil.ZERO,
                                  "expires_at": s.get("expires_at") or timeutil.ZERO} for s in snapshots]}


def _stored_as_is(rendered: dict) -> dict:
    """Corral keeps rootfs files unshifted (the rootfs mount is idmapped): say so the way LXD reads a
    backup, volatile.last_state.idmap being the map the files are stored with (empty: none)."""
    for key in ("config", "expanded_config"):
        if "volatile.last_state.idmap" in rendered.get(key, {}):
            rendered[key] = {**rendered[key], "volatile.last_state.idmap": "[]"}
    return rendered
