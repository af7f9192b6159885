"""Custom volume snapshots: create, rename, update, delete, restore (a part of storage/volumes.py's
Volumes, which inherits it; the methods use its pool and instance helpers)."""
from __future__ import annotations

import asyncio

from corral import timeutil
from corral.db.queries import storage as q
from corral.errors import BadRequest, Conflict, NotFound
from corral.names import check_entity_name
from corral.storage.volnames import expiry_from, snapshot_name, vol_url


class VolumeSnapshots:
    # ---- snapshots ----------------------------------------------------------------------------

    def render_snapshot(self, v: dict, s: dict) -> dict:
        return {"config": {**{k: val for k, val in v["config"].items()}, **s["config"]},
                "description": s["description"], "name": s["name"],
                "content_type": v.get("content_type") or "filesystem",
                "created_at": s["created_at"], "expires_at": s["expires_at"]}

    async def snapshots(self, v: dict) -> list[dict]:
        async with self.db.session() as tx:
            return await q.volume_snapshots(tx, v["id"])

    async def snapshot(self, v: dict, snap: str) -> dict:
        for s in await self.snapshots(v):
            if s["name"] == snap:
                return s
        raise NotFound("Storage volume snapshot not found")

    async def create_snapshot(self, pool: str, project: str, type_: str, name: str, body: dict, requestor):
        if type_ != "custom":
            raise BadRequest("Snapshots of instance volumes are made with the instance snapshot API")
        await self.d.restrictions.check_snapshot(project)
        v = await self.custom(pool, project, name)
        p = self._pool(pool)
        taken = {s["name"] for s in await self.snapshots(v)}
        snap = body.get("name") or snapshot_name(v["config"].get("snapshots.pattern") or "snap%d", taken)
        check_entity_name("snapshot", snap)
        if snap in taken:
            raise Conflict(f'Snapshot "{snap}" already exists')
        expires_at = body.get("expires_at") or expiry_from(v["config"].get("snapshots.expiry"))
        url = vol_url(pool, "custom", f"{name}/snapshots/{snap}", project)

        async def run(op):
            vol = self.vol(v)
            async with self.d.pools.lock(pool):
                await asyncio.to_thread(p.snapshot, vol, snap)
                try:
                    async with self.db.transaction() as tx:
                        await q.create_volume_snapshot(tx, v["id"], {
                            "name": snap, "description": body.get("description") or "", "config": {},
                            "created_at": timeutil.now(), "expires_at": expires_at})
                except BaseException:
                    await asyncio.to_thread(p.delete_snapshot, vol, snap)
                    raise
            self.events.lifecycle("storage-volume-snapshot-created", url, project=project, requestor=requestor)

        return self.d.operations.create(project=project, description="Creating storage volume snapshot",
                                        resources={"storage_volumes": [vol_url(pool, "custom", name, project)]},
                                        run=run)

    async def update_snapshot(self, v: dict, snap: str, body: dict) -> None:
        s = await self.snapshot(v, snap)
        description = body.get("description", s["description"])
        if not isinstance(description, str):
            raise BadRequest('Invalid value for field "description": expected string')
        async with self.db.transaction() as tx:
            await q.update_volume_snapshot(tx, v["id"], snap, description,
                                           body.get("expires_at") or s["expires_at"])

    async def rename_snapshot(self, v: dict, snap: str, body: dict, requestor):
        await self.snapshot(v, snap)
        new = check_entity_name("snapshot", body.get("name"))
        if any(s["name"] == new for s in await self.snapshots(v)):
            raise Conflict(f'Snapshot "{new}" already exists')
        p = self.d.pools.pool(v["pool"])

        async def run(op):
            vol = self.vol(v)
            await asyncio.to_thread(p.rename_snapshot, vol, snap, new)
            try:
                async with self.db.transaction() as tx:
                    await q.rename_volume_snapshot(tx, v["id"], snap, new)
            except BaseException:
                await asyncio.to_thread(p.rename_snapshot, vol, new, snap)
                raise

        return self.d.operations.create(project=v["project"], description="Renaming storage volume snapshot",
                                        run=run)

    async def delete_snapshot(self, v: dict, snap: str, requestor):
        await self.snapshot(v, snap)
        p = self.d.pools.pool(v["pool"])

        async def run(op):
            async with self.db.transaction() as tx:
                await q.delete_volume_snapshot(tx, v["id"], snap)
            await asyncio.to_thread(p.delete_snapshot, self.vol(v), snap)
            self.events.lifecycle("storage-volume-snapshot-deleted",
                                  vol_url(v["pool"], "custom", f"{v['name']}/snapshots/{snap}", v["project"]),
                                  project=v["project"], requestor=requestor)

        return self.d.operations.create(project=v["project"], description="Deleting storage volume snapshot",
                                        run=run)

    async def restore(self, v: dict, snap: str, requestor) -> None:
        await self.snapshot(v, snap)
        for u in await self.used_by(v["pool"], v["project"], v["name"]):
            inst = u.split("/1.0/instances/", 1)
            if len(inst) == 2 and await self._running(v["project"], inst[1].split("?")[0]):
                raise BadRequest("Cannot restore a volume that is attached to a running instance")
        p = self.d.pools.pool(v["pool"])
        async with self.d.pools.lock(v["pool"]):
            await asyncio.to_thread(p.restore, self.vol(v), snap)
        self.events.lifecycle("storage-volume-restored", vol_url(v["pool"], "custom", v["name"], v["project"]),
                              project=v["project"], context={"snapshot": snap}, requestor=requestor)
