"""Projects (a new project comes with its own `default` profile when features.profiles is on).
LXD's tables: projects (id, name, description) and projects_config (project_id, key, value)."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd


async def _rows(tx: Tx, rows: list[dict]) -> list[dict]:
    config = await lxd.config_of(tx, "projects_config", "project_id", [r["id"] for r in rows])
    return [{"name": r["name"], "description": r["description"] or "", "config": config.get(r["id"], {})}
            for r in rows]


async def get_all(tx: Tx) -> list[dict]:
    return await _rows(tx, await tx.fetch("SELECT id, name, description FROM projects ORDER BY name"))


async def get(tx: Tx, name: str) -> dict | None:
    r = await tx.fetchone("SELECT id, name, description FROM projects WHERE name = ?", [name])
    return (await _rows(tx, [r]))[0] if r else None


async def create(tx: Tx, name: str, description: str, config: dict) -> None:
    pid, _ = await tx.execute("INSERT INTO projects (name, description) VALUES (?, ?)", [name, description])
    await lxd.set_config(tx, "projects_config", "project_id", pid, config)


async def update(tx: Tx, name: str, description: str, config: dict) -> None:
    r = await tx.fetchone("SELECT id FROM projects WHERE name = ?", [name])
    if r:
        await tx.execute("UPDATE projects SET description = ? WHERE id = ?", [description, r["id"]])
        await lxd.set_config(tx, "projects_config", "project_id", r["id"], config)


async def rename(tx: Tx, old: str, new: str) -> None:
    """Rows in the project refer to it by id and follow."""
    await tx.execute("UPDATE projects SET name = ? WHERE name = ?", [new, old])


async def delete(tx: Tx, name: str) -> None:
    """The project row; its config and profiles go with it (ON DELETE CASCADE)."""
    await tx.execute("DELETE FROM projects WHERE name = ?", [name])
