"""Projects (a new project comes with its own `default` profile when features.profiles is on)."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import dumps, loads


def _row(r: dict) -> dict:
    return {"name": r["name"], "description": r["description"], "config": loads(r["config"])}


async def get_all(tx: Tx) -> list[dict]:
    return [_row(r) for r in await tx.fetch("SELECT name, description, config FROM projects ORDER BY name")]


async def get(tx: Tx, name: str) -> dict | None:
    r = await tx.fetchone("SELECT name, description, config FROM projects WHERE name = ?", [name])
    return _row(r) if r else None


async def create(tx: Tx, name: str, description: str, config: dict) -> None:
    await tx.execute("INSERT INTO projects (name, description, config) VALUES (?, ?, ?)",
                     [name, description, dumps(config)])


async def update(tx: Tx, name: str, description: str, config: dict) -> None:
    await tx.execute("UPDATE projects SET description = ?, config = ? WHERE name = ?",
                     [description, dumps(config), name])


async def rename(tx: Tx, old: str, new: str) -> None:
    await tx.execute("UPDATE projects SET name = ? WHERE name = ?", [new, old])
    await tx.execute("UPDATE profiles SET project = ? WHERE project = ?", [new, old])


async def delete(tx: Tx, name: str) -> None:
    await tx.execute("DELETE FROM profiles WHERE project = ?", [name])
    await tx.execute("DELETE FROM projects WHERE name = ?", [name])
