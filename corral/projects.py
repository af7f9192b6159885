"""Projects. Only `default` exists for now; the API reads it and refuses to write."""
from __future__ import annotations

from corral.db import Database
from corral.db.queries import projects as q


class Projects:
    def __init__(self, db: Database):
        self.db = db
        self._names: set[str] = set()

    async def load(self) -> None:
        async with self.db.session() as tx:
            self._names = {p["name"] for p in await q.get_all(tx)}

    async def exists(self, name: str) -> bool:
        return name in self._names

    async def get_all(self) -> list[dict]:
        async with self.db.session() as tx:
            return await q.get_all(tx)

    async def get(self, name: str) -> dict | None:
        async with self.db.session() as tx:
            return await q.get(tx, name)
