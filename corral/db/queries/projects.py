"""Projects (only `default` exists until projects are writable)."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import loads


def _row(r: dict) -> dict:
    return {"name": r["name"], "description": r["description"], "config": loads(r["config"])}


async def get_all(tx: Tx) -> list[dict]:
    return [_row(r) for r in await tx.fetch("SELECT name, description, config FROM projects ORDER BY name")]


async def get(tx: Tx, name: str) -> dict | None:
    r = await tx.fetchone("SELECT name, description, config FROM projects WHERE name = ?", [name])
    return _row(r) if r else None
