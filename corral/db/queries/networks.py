"""Networks: one row each, config as JSON."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import dumps, loads


def _row(r: dict) -> dict:
    return {"name": r["name"], "type": r["type"], "description": r["description"],
            "config": loads(r["config"]), "status": r["status"], "project": r["project"]}


async def get_all(tx: Tx, project: str = "default") -> list[dict]:
    rows = await tx.fetch("SELECT * FROM networks WHERE project = ? ORDER BY name", [project])
    return [_row(r) for r in rows]


async def get(tx: Tx, name: str, project: str = "default") -> dict | None:
    r = await tx.fetchone("SELECT * FROM networks WHERE project = ? AND name = ?", [project, name])
    return _row(r) if r else None


async def create(tx: Tx, n: dict, project: str = "default") -> None:
    await tx.execute("INSERT INTO networks (project, name, type, description, config, status) VALUES (?, ?, ?, ?, ?, ?)",
                     [project, n["name"], n["type"], n.get("description", ""), dumps(n.get("config", {})),
                      n.get("status", "Created")])


async def update(tx: Tx, name: str, description: str, config: dict, project: str = "default") -> None:
    await tx.execute("UPDATE networks SET description = ?, config = ? WHERE project = ? AND name = ?",
                     [description, dumps(config), project, name])


async def rename(tx: Tx, old: str, new: str, project: str = "default") -> None:
    await tx.execute("UPDATE networks SET name = ? WHERE project = ? AND name = ?", [new, project, old])


async def delete(tx: Tx, name: str, project: str = "default") -> None:
    await tx.execute("DELETE FROM networks WHERE project = ? AND name = ?", [project, name])
