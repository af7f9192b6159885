"""Warnings (GET /1.0/warnings): raised by the daemon when something on the host needs attention.

Each member raises its own (the row's node_id is this member's); the warnings table is the
cluster's, so every member lists every member's warnings, each with its member's name as
`location` (as LXD 5.0, which also ignores `?target=` on the listing)."""
from __future__ import annotations

from corral import timeutil
from corral.db import Database
from corral.db.queries import warnings as q
from corral.errors import BadRequest, NotFound


class Warnings:
    def __init__(self, db: Database):
        self.db = db

    async def raise_(self, type_: str, message: str, *, severity: str = "low", project: str = "",
                     entity_url: str = "") -> None:
        async with self.db.transaction() as tx:
            await q.upsert(tx, project=project, entity_url=entity_url, type=type_,
                           message=message, severity=severity, now=timeutil.now())

    async def get_all(self) -> list[dict]:
        async with self.db.session() as tx:
            return [self._api(w) for w in await q.get_all(tx)]

    async def get(self, uuid: str) -> dict:
        async with self.db.session() as tx:
            w = await q.get(tx, uuid)
        if w is None:
            raise NotFound("Warning not found")
        return self._api(w)

    async def set_status(self, uuid: str, status: str) -> None:
        if status not in ("new", "acknowledged"):
            raise BadRequest(f'Invalid warning status "{status}"')
        await self.get(uuid)
        async with self.db.transaction() as tx:
            await q.set_status(tx, uuid, status)

    async def delete(self, uuid: str) -> None:
        await self.get(uuid)
        async with self.db.transaction() as tx:
            await q.delete(tx, uuid)

    @staticmethod
    def _api(w: dict) -> dict:
        return {"status": w["status"], "uuid": w["uuid"], "location": w["node"] or "none",
                "project": w["project"], "type": w["type"], "count": w["count"],
                "first_seen_at": w["first_seen_at"], "last_seen_at": w["last_seen_at"],
                "last_message": w["last_message"], "severity": w["severity"],
                "entity_url": w["entity_url"]}
