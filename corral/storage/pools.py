"""Storage pools the daemon knows: records in dqlite, a driver object per pool."""
from __future__ import annotations

import asyncio
import os

from corral.db import Database
from corral.db.queries import storage as q
from corral.errors import BadRequest, Conflict, NotFound
from corral.names import check_entity_name
from corral.storage import StorageDriver, driver_class


class Pools:
    def __init__(self, db: Database, state_dir: str, events):
        self.db = db
        self.state_dir = state_dir
        self.events = events
        self._drivers: dict[str, StorageDriver] = {}

    def default_path(self, name: str) -> str:
        return os.path.join(self.state_dir, "storage-pools", name)

    async def load(self) -> None:
        async with self.db.session() as tx:
            for p in await q.pools(tx):
                self._drivers[p["name"]] = self._make(p)

    def _make(self, p: dict) -> StorageDriver:
        path = p["config"].get("source") or self.default_path(p["name"])
        return driver_class(p["driver"])(p["name"], path, p["config"])

    def driver(self, name: str) -> StorageDriver:
        d = self._drivers.get(name)
        if d is None:
            raise NotFound("Storage pool not found")
        return d

    def names(self) -> list[str]:
        return sorted(self._drivers)

    async def get_all(self) -> list[dict]:
        async with self.db.session() as tx:
            return await q.pools(tx)

    async def get(self, name: str) -> dict:
        async with self.db.session() as tx:
            p = await q.pool(tx, name)
        if p is None:
            raise NotFound("Storage pool not found")
        return p

    async def create(self, body: dict, requestor: dict | None = None) -> str:
        name = check_entity_name("storage pool", body.get("name"))
        driver = body.get("driver")
        if not isinstance(driver, str) or not driver:
            raise BadRequest("No driver provided")
        config = body.get("config") or {}
        if not isinstance(config, dict) or any(not isinstance(v, str) for v in config.values()):
            raise BadRequest("Invalid config: expected a map of strings")
        for k in config:
            if k not in ("source",):
                raise BadRequest(f'Invalid config: unknown key "{k}" for a {driver} pool')
        cls = driver_class(driver)
        if name in self._drivers:
            raise Conflict(f'Storage pool "{name}" already exists')
        config = dict(config)
        config.setdefault("source", self.default_path(name))
        p = {"name": name, "driver": driver, "description": body.get("description") or "", "config": config}
        drv = cls(name, config["source"], config)
        await asyncio.to_thread(drv.create_pool)
        try:
            async with self.db.transaction() as tx:
                await q.create_pool(tx, p)
        except Exception:
            await asyncio.to_thread(drv.delete_pool)
            raise
        self._drivers[name] = drv
        self.events.lifecycle("storage-pool-created", f"/1.0/storage-pools/{name}", requestor=requestor)
        return name

    async def delete(self, name: str, used_by: list[str], requestor: dict | None = None) -> None:
        drv = self.driver(name)
        if used_by:
            raise BadRequest("The storage pool is currently in use")
        await asyncio.to_thread(drv.delete_pool)
        async with self.db.transaction() as tx:
            await q.delete_pool(tx, name)
        del self._drivers[name]
        self.events.lifecycle("storage-pool-deleted", f"/1.0/storage-pools/{name}", requestor=requestor)
