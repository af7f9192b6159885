"""Server configuration: global keys in dqlite, member-local keys in the local database."""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from corral import config
from corral.db import Database
from corral.db.queries import config as q
from corral.errors import BadRequest, CorralError
from corral.locks import LOCKS
from corral.trust import hash_password

log = logging.getLogger(__name__)


class ServerConfig:
    def __init__(self, db: Database):
        self.db = db
        self._global: dict[str, str] = {}
        # Called with the changed keys before they are stored (e.g. the HTTPS listener); called again
        # with the old values to undo when a later watcher or the commit fails.
        self.watchers: list[Callable[[dict[str, str]], Awaitable[None]]] = []

    async def load(self) -> None:
        async with self.db.session() as tx:
            self._global = await q.get(tx)

    def all(self) -> dict[str, str]:
        return {**self._global, **self.db.local.get_config()}

    def public(self) -> dict[str, str]:
        """What GET /1.0 shows: hidden keys (passwords) appear as set but never with their value."""
        out = {}
        for k, v in self.all().items():
            key = config.lookup(config.SERVER, k)
            out[k] = "true" if key is not None and key.hidden else v
        return out

    def get(self, name: str):
        return config.value(config.SERVER, self.all(), name)

    async def update(self, new: dict, *, replace: bool,
                     etag_check: Callable[[dict], None] | None = None) -> dict[str, str]:
        """PUT (replace=True: absent keys are unset) or PATCH, as one step under the server lock:
        If-Match against the current config, validate, apply (watchers: the HTTPS listener...),
        commit. A watcher that fails undoes the watchers already applied and nothing is stored."""
        async with LOCKS.hold("server"):
            if etag_check is not None:
                etag_check(self.public())
            changes = self._changes(new, replace=replace)
            if not changes:
                return {}
            current = self.all()
            before = {k: current.get(k, "") for k in changes}
            after = {k: v or "" for k, v in changes.items()}
            applied: list = []
            try:
                for watcher in self.watchers:
                    await _apply(watcher, after)
                    applied.append(watcher)
                await self._commit(changes)
            except BaseException:
                for watcher in reversed(applied):
                    try:
                        await watcher(before)
                    except Exception:  # noqa: BLE001 - report the first error, log the second
                        log.exception("server config: undoing %s failed", sorted(before))
                raise
            return after

    def _changes(self, new: dict, *, replace: bool) -> dict[str, str | None]:
        """The keys that change (None: unset). Validates everything; raises a 400 on bad input."""
        values = config.validate(config.SERVER, new)
        current = self.all()
        pw = values.get("core.trust_password")
        if pw:
            # Stored hashed like LXD (scrypt); GET shows "true", which written back keeps the password.
            if pw == "true" and current.get("core.trust_password"):
                values["core.trust_password"] = current["core.trust_password"]
            else:
                values["core.trust_password"] = hash_password(pw)
        changes: dict[str, str | None] = dict(values)
        if replace:
            for k in current:
                if k not in values:
                    key = config.lookup(config.SERVER, k)
                    if key is not None and key.hidden:
                        continue  # LXD keeps secrets unless explicitly changed
                    changes[k] = None
        return {k: v for k, v in changes.items() if current.get(k, "") != (v or "")}

    async def _commit(self, changes: dict[str, str | None]) -> None:
        local = {k: v for k, v in changes.items() if config.lookup(config.SERVER, k).local}
        glob = {k: v for k, v in changes.items() if k not in local}
        old_glob = {k: self._global.get(k) for k in glob}
        if glob:
            try:
                async with self.db.transaction() as tx:
                    await q.update(tx, glob)
                    # In memory before the commit's listeners run (the heartbeat reads the new
                    # threshold at once); put back if the commit fails.
                    self._set_global(glob)
            except BaseException:
                self._set_global(old_glob)
                raise
        if local:
            try:
                self.db.local.set_config(local)
            except BaseException:
                if glob:
                    async with self.db.transaction() as tx:
                        await q.update(tx, old_glob)
                    self._set_global(old_glob)
                raise

    def _set_global(self, values: dict[str, str | None]) -> None:
        for k, v in values.items():
            if v in (None, ""):
                self._global.pop(k, None)
            else:
                self._global[k] = v


async def _apply(watcher, changes: dict[str, str]) -> None:
    """Run one watcher; a host failure that is not already an API error becomes a clear 400."""
    try:
        await watcher(changes)
    except Exception as e:  # noqa: BLE001
        if isinstance(e, CorralError) and e.status < 500:
            raise
        msg = e.message if isinstance(e, CorralError) else str(e) or type(e).__name__
        raise BadRequest(f"Failed to apply {', '.join(sorted(changes))}: {msg}") from e
