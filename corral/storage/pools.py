"""Storage pools the daemon knows: records in dqlite, a Pool (corral/storage/pool.py) per pool."""
from __future__ import annotations

import asyncio
import logging
import os

from corral.config.storage import check_pool
from corral.db import Database
from corral.db.queries import storage as q
from corral.errors import BadRequest, Conflict, NotFound
from corral.names import check_entity_name
from corral.storage import StorageDriver, driver_class
from corral.storage.pool import Pool
from corral.storage.perms import tighten_pool

log = logging.getLogger(__name__)

def check_pool_config(driver: type[StorageDriver], config) -> dict[str, str]:
    """Every key against the driver's pool keys (corral/config/storage.py), with LXD's errors."""
    return check_pool(driver.name, config)


class Pools:
    def __init__(self, db: Database, state_dir: str, events, warnings=None):
        self.db = db
        self.state_dir = state_dir
        self.events = events
        self.warnings = warnings
        self._pools: dict[str, Pool] = {}
        self._unavailable: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def default_path(self, name: str) -> str:
        return os.path.join(self.state_dir, "storage-pools", name)

    @property
    def disks_dir(self) -> str:
        return os.path.join(self.state_dir, "disks")

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def load(self) -> None:
        """Make a driver per pool and mount the pools that need it (loop files, block devices)."""
        async with self.db.session() as tx:
            pools = await q.pools(tx)
        for p in pools:
            pool = self._make(p)
            drv = pool.driver
            self._pools[p["name"]] = pool
            try:
                ok = await asyncio.to_thread(drv.mount)
            except Exception as e:  # noqa: BLE001 - reported, the daemon still starts
                ok = False
                log.warning("storage pool %s: %s", p["name"], e)
            if ok and drv.root_only:
                await self._tighten(p["name"], drv.path)
            else:
                self._unavailable.add(p["name"])
                if self.warnings is not None:
                    await self.warnings.raise_("Storage pool unavailable",
                                               f'Storage pool "{p["name"]}" could not be mounted',
                                               severity="moderate", entity_url=f"/1.0/storage-pools/{p['name']}")

    @staticmethod
    async def _tighten(pool: str, path: str) -> None:
        """Volumes are root-only (storage/perms.py); fix what an older release left looser."""
        try:
            changed = await asyncio.to_thread(tighten_pool, path)
        except OSError as e:
            log.error("storage pool %s: cannot restrict volume directories to root: %s", pool, e)
            return
        if changed:
            log.warning("storage pool %s: restricted %d volume directories to root (e.g. %s)",
                        pool, len(changed), changed[0])

    def _make(self, p: dict) -> Pool:
        cls = driver_class(p["driver"])
        path = cls.pool_path(p["name"], p["config"], self.default_path(p["name"]))
        return Pool(p["name"], cls(p["name"], path, p["config"]))

    def pool(self, name: str) -> Pool:
        """The pool (404 when there is none by that name)."""
        p = self._pools.get(name)
        if p is None:
            raise NotFound("Storage pool not found")
        return p

    def usable(self, name: str) -> Pool:
        """The pool, refused with LXD's error when it could not be mounted."""
        p = self.pool(name)
        if name in self._unavailable:
            raise BadRequest(f'Storage pool "{name}" is unavailable')
        return p

    def driver_name(self, name: str) -> str:
        return self.pool(name).driver.name

    def holding_instance(self, volume: str) -> str:
        """The pool that holds an instance volume, found on disk (for an instance whose root disk
        device cannot be read from its record)."""
        for name, pool in sorted(self._pools.items()):
            if pool.has_instance(volume):
                return name
        raise BadRequest("Failed to get root disk device: No root device could be found")

    def available(self, name: str) -> bool:
        return name in self._pools and name not in self._unavailable

    def names(self) -> list[str]:
        return sorted(self._pools)

    async def get_all(self) -> list[dict]:
        async with self.db.session() as tx:
            return [self._status(p) for p in await q.pools(tx)]

    def _status(self, p: dict) -> dict:
        if p["name"] in self._unavailable:
            p["status"] = "Unavailable"
        return p

    async def get(self, name: str) -> dict:
        async with self.db.session() as tx:
            p = await q.pool(tx, name)
        if p is None:
            raise NotFound("Storage pool not found")
        return self._status(p)

    async def create(self, body: dict, requestor: dict | None = None) -> str:
        name = check_entity_name("storage pool", body.get("name"))
        driver = body.get("driver")
        if not isinstance(driver, str) or not driver:
            raise BadRequest("No driver provided")
        description = body.get("description") or ""
        if not isinstance(description, str):
            raise BadRequest('Invalid value for field "description": expected string')
        cls = driver_class(driver)
        config = check_pool_config(cls, body.get("config") or {})
        if name in self._pools:
            raise Conflict(f'Storage pool "{name}" already exists')
        async with self.lock(name):
            config = await asyncio.to_thread(cls.fill_config, name, config, self.default_path(name), self.disks_dir)
            p = {"name": name, "driver": driver, "description": description, "config": config}
            pool = self._make(p)
            drv = pool.driver
            await asyncio.to_thread(drv.create_pool)
            try:
                async with self.db.transaction() as tx:
                    await q.create_pool(tx, p)
            except BaseException:
                await asyncio.to_thread(drv.delete_pool)
                raise
            self._pools[name] = pool
        self.events.lifecycle("storage-pool-created", f"/1.0/storage-pools/{name}", requestor=requestor)
        return name

    async def update(self, name: str, body: dict, *, replace: bool, requestor: dict | None = None,
                     etag_check=None) -> None:
        """PUT/PATCH under the pool's lock: If-Match, validate, apply each changed driver key, store.
        When a key fails to apply the keys applied before it are set back and nothing is stored."""
        self.pool(name)
        async with self.lock(name):
            p = await self.get(name)
            if etag_check is not None:
                etag_check({"config": p["config"], "description": p["description"]})
            drv = self.pool(name).driver
            config = check_pool_config(type(drv), body.get("config") or {})
            if replace:
                new = dict(config)
                # Keys the daemon filled in at creation stay unless the client changes them.
                for k in ("source", "size", "btrfs.mount_options"):
                    if k in p["config"] and k not in new:
                        new[k] = p["config"][k]
            else:
                new = {**p["config"], **config}
            description = body.get("description", p["description"] if not replace else "")
            if not isinstance(description, str):
                raise BadRequest('Invalid value for field "description": expected string')
            changed = {k: new.get(k) for k in set(new) | set(p["config"]) if new.get(k) != p["config"].get(k)}
            # "size" last: a grown pool cannot be shrunk back if a later key failed.
            driver_changes = {k: v for k, v in sorted(changed.items(), key=lambda kv: (kv[0] == "size", kv[0]))
                              if not k.startswith(("user.", "volume."))}
            applied: list[str] = []
            try:
                for k, v in driver_changes.items():
                    await asyncio.to_thread(drv.update_pool, {k: v})
                    applied.append(k)
                async with self.db.transaction() as tx:
                    await q.update_pool(tx, name, description or "", new)
            except BaseException:
                for k in reversed(applied):
                    try:
                        await asyncio.to_thread(drv.update_pool, {k: p["config"].get(k)})
                    except Exception:  # noqa: BLE001 - the first error is the one reported
                        log.exception("pool %s: restoring %s failed", name, k)
                raise
            drv.config = new
        self.events.lifecycle("storage-pool-updated", f"/1.0/storage-pools/{name}", requestor=requestor)

    async def delete(self, name: str, used_by: list[str], requestor: dict | None = None) -> None:
        drv = self.pool(name).driver
        if used_by:
            raise BadRequest("The storage pool is currently in use")
        async with self.lock(name):
            await asyncio.to_thread(drv.delete_pool)
            async with self.db.transaction() as tx:
                await q.delete_pool(tx, name)
            del self._pools[name]
            self._unavailable.discard(name)
        self.events.lifecycle("storage-pool-deleted", f"/1.0/storage-pools/{name}", requestor=requestor)

    async def resources(self, name: str) -> dict:
        return await asyncio.to_thread(self.usable(name).driver.resources)
