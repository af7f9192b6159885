"""Storage pools the daemon knows: records in dqlite, a Pool (corral/storage/pool.py) per pool."""
from __future__ import annotations

import asyncio
import logging
import os

from corral.config import member_keys
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
        """Make a driver per pool created on this member and mount those that need it (loop
        files, block devices). Pools only pending (or errored) here have no driver until they
        are created here (create_local)."""
        async with self.db.transaction() as tx:
            pools = await q.pools(tx)
            for p in pools:
                # A standalone server kept member-specific keys cluster-wide: they are this member's.
                if p["locations"] and len(p["members"]) == 1 and p["local_status"] is not None and \
                        await q.localise_member_keys(tx, p["id"], member_keys.POOL):
                    p.update(await q.pool(tx, p["name"]))
        self._pools, self._unavailable = {}, set()
        for p in pools:
            if p["local_status"] == "Created":
                await self._load_one(p)

    async def _load_one(self, p: dict) -> None:
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

    def holding_instance(self, volume: str, vtype: str = "container") -> str:
        """The pool that holds an instance volume (a VM's with `vtype` "virtual-machine"), found on
        disk (for an instance whose root disk device cannot be read from its record)."""
        for name, pool in sorted(self._pools.items()):
            if pool.has_instance(volume, vtype=vtype):
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
        """`local_status` as LXD's pool.LocalStatus(): Unavailable when the pool is created here
        but could not be mounted."""
        if p["name"] in self._unavailable and p["local_status"] == "Created":
            p["local_status"] = "Unavailable"
        return p

    async def get(self, name: str) -> dict:
        async with self.db.session() as tx:
            p = await q.pool(tx, name)
        if p is None:
            raise NotFound("Storage pool not found")
        return self._status(p)

    @staticmethod
    def check_config(cls: type[StorageDriver], config) -> dict[str, str]:
        return check_pool_config(cls, config)

    @staticmethod
    def check_request(body: dict) -> tuple[str, str, str, type[StorageDriver]]:
        """(name, driver, description, driver class) of a POST /1.0/storage-pools body."""
        name = check_entity_name("storage pool", body.get("name"))
        driver = body.get("driver")
        if not isinstance(driver, str) or not driver:
            raise BadRequest("No driver provided")
        description = body.get("description") or ""
        if not isinstance(description, str):
            raise BadRequest('Invalid value for field "description": expected string')
        return name, driver, description, driver_class(driver)

    async def create(self, body: dict, requestor: dict | None = None) -> str:
        """A pool made on this member alone (standalone, or a cluster of one member)."""
        name, driver, description, cls = self.check_request(body)
        config = check_pool_config(cls, body.get("config") or {})
        if name in self._pools:
            raise Conflict(f'Storage pool "{name}" already exists')
        async with self.lock(name):
            async with self.db.session() as tx:
                if await q.pool(tx, name) is not None:
                    raise Conflict(f'Storage pool "{name}" already exists')
            config = await asyncio.to_thread(cls.fill_config, name, config, self.default_path(name), self.disks_dir)
            p = {"name": name, "driver": driver, "description": description, "config": config}
            pool = self._make(p)
            drv = pool.driver
            await asyncio.to_thread(drv.create_pool)
            try:
                async with self.db.transaction() as tx:
                    await q.create_pool(tx, p, member_keys.POOL)
            except BaseException:
                await asyncio.to_thread(drv.delete_pool)
                raise
            self._pools[name] = pool
        self.events.lifecycle("storage-pool-created", f"/1.0/storage-pools/{name}", requestor=requestor)
        return name

    async def create_local(self, name: str) -> dict:
        """This member's part of a clustered pool (LXD's storagePoolCreateLocal): the pool made
        here from the config this member sees (cluster-wide and its own keys), what the driver
        filled in recorded as this member's, its state here Created. Nothing is done when it is
        Created here already; on failure nothing is left here (the caller records the error)."""
        async with self.lock(name):
            async with self.db.session() as tx:
                p = await q.pool(tx, name)
            if p is None:
                raise NotFound("Storage pool not found")
            if p["local_status"] is None:
                raise BadRequest(f'Storage pool "{name}" is not defined on this member')
            if p["local_status"] == "Created" and name in self._pools:
                return p["config"]
            cls = driver_class(p["driver"])
            config = check_pool_config(cls, p["config"])
            config = await asyncio.to_thread(cls.fill_config, name, config, self.default_path(name), self.disks_dir)
            p["config"] = config
            pool = self._make(p)
            drv = pool.driver
            await asyncio.to_thread(drv.create_pool)
            try:
                glob, mine = member_keys.split(config, member_keys.POOL)
                async with self.db.transaction() as tx:
                    await q.set_member_config(tx, p["id"], mine)
                    stored = await q.pool(tx, name)
                    if any(stored["config"].get(k) != v for k, v in glob.items()):
                        # a key the driver filled in (the same on every member)
                        await q.set_global_config(tx, p["id"], {**{k: v for k, v in stored["config"].items()
                                                                   if k not in member_keys.POOL}, **glob})
                    await q.set_member_state(tx, p["id"], "Created")
            except BaseException:
                await asyncio.to_thread(drv.delete_pool)
                raise
            self._pools[name] = pool
            self._unavailable.discard(name)
            return config

    async def delete_local(self, name: str) -> None:
        """This member's part of a clustered pool removed (the records stay: the member that
        serves the DELETE removes them once every member removed its part); Pending here again."""
        async with self.lock(name):
            pool = self._pools.get(name)
            if pool is not None:
                await asyncio.to_thread(pool.driver.delete_pool)
                del self._pools[name]
                self._unavailable.discard(name)
            async with self.db.transaction() as tx:
                p = await q.pool(tx, name)
                if p is not None and p["local_status"] is not None:
                    await q.set_member_state(tx, p["id"], "Pending")

    async def define(self, body: dict, target: str) -> str:
        """`lxc storage create P DRIVER --target MEMBER`: the pool defined (Pending) on a member
        with that member's keys (LXD's CreatePendingStoragePool); nothing is made yet."""
        name, driver, _description, cls = self.check_request(body)
        config = body.get("config") or {}
        if isinstance(config, dict):
            member_keys.only_member_keys(config, member_keys.POOL)
        config = check_pool_config(cls, config)
        async with self.lock(name):
            async with self.db.transaction() as tx:
                wrong = await q.define_on_member(tx, name, driver, target, config)
        if wrong == "member":
            raise NotFound("Cluster member not found")
        if wrong == "driver":
            raise BadRequest("Storage pool already exists with a different driver")
        if wrong == "state":
            raise BadRequest("Storage pool is not in pending state")
        if wrong == "defined":
            raise BadRequest(f'The storage pool already defined on member "{target}"')
        return name

    async def update(self, name: str, body: dict, *, replace: bool, requestor: dict | None = None,
                     etag_check=None, store: bool = True) -> None:
        """PUT/PATCH under the pool's lock: If-Match, validate, apply each changed driver key, store
        (this member's view: the cluster-wide keys and its own; not when `store` is False, for a
        change another member stores). When a key fails to apply the keys applied before it are
        set back and nothing is stored."""
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
                for k in ("source", "size", "btrfs.mount_options", "volatile.initial_source"):
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
                if store:
                    async with self.db.transaction() as tx:
                        await q.update_pool(tx, name, description or "", new, member_keys.POOL)
            except BaseException:
                for k in reversed(applied):
                    try:
                        await asyncio.to_thread(drv.update_pool, {k: p["config"].get(k)})
                    except Exception:  # noqa: BLE001 - the first error is the one reported
                        log.exception("pool %s: restoring %s failed", name, k)
                raise
            drv.config = new
        if store:
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
