"""Server configuration: global keys in dqlite, member-local keys in the local database."""
from __future__ import annotations

from typing import Awaitable, Callable

from corral import config
from corral.db import Database
from corral.db.queries import config as q
from corral.trust import hash_password


class ServerConfig:
    def __init__(self, db: Database):
        self.db = db
        self._global: dict[str, str] = {}
        # Called with the changed keys after every successful update (e.g. the HTTPS listener).
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

    async def update(self, new: dict, *, replace: bool) -> dict[str, str]:
        """PUT (replace=True: absent keys are unset) or PATCH. Validates everything first."""
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
        changes = {k: v for k, v in changes.items() if current.get(k, "") != (v or "")}
        local = {k: v for k, v in changes.items() if config.lookup(config.SERVER, k).local}
        glob = {k: v for k, v in changes.items() if k not in local}
        if glob:
            async with self.db.transaction() as tx:
                await q.update(tx, glob)
            for k, v in glob.items():
                if v in (None, ""):
                    self._global.pop(k, None)
                else:
                    self._global[k] = v
        if local:
            self.db.local.set_config(local)
        if changes:
            for watcher in self.watchers:
                await watcher({k: v or "" for k, v in changes.items()})
        return {k: v or "" for k, v in changes.items()}
