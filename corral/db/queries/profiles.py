"""Profiles: one row each, config and devices as JSON."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import dumps, loads

_COLS = "name, description, config, devices"


def _row(r: dict) -> dict:
    return {"name": r["name"], "description": r["description"],
            "config": loads(r["config"]), "devices": loads(r["devices"])}


async def names(tx: Tx, project: str) -> list[str]:
    rows = await tx.fetch("SELECT name FROM profiles WHERE project = ? ORDER BY name", [project])
    return [r["name"] for r in rows]


async def get_all(tx: Tx, project: str) -> list[dict]:
    rows = await tx.fetch(f"SELECT {_COLS} FROM profiles WHERE project = ? ORDER BY name", [project])
    return [_row(r) for r in rows]


async def get(tx: Tx, project: str, name: str) -> dict | None:
    r = await tx.fetchone(f"SELECT {_COLS} FROM profiles WHERE project = ? AND name = ?", [project, name])
    return _row(r) if r else None


async def create(tx: Tx, project: str, p: dict) -> None:
    await tx.execute("INSERT INTO profiles (project, name, description, config, devices) VALUES (?, ?, ?, ?, ?)",
                     [project, p["name"], p.get("description", ""), dumps(p.get("config", {})),
                      dumps(p.get("devices", {}))])


async def update(tx: Tx, project: str, name: str, p: dict) -> None:
    await tx.execute("UPDATE profiles SET description = ?, config = ?, devices = ? WHERE project = ? AND name = ?",
                     [p.get("description", ""), dumps(p.get("config", {})), dumps(p.get("devices", {})),
                      project, name])


async def rename(tx: Tx, project: str, old: str, new: str) -> None:
    await tx.execute("UPDATE profiles SET name = ? WHERE project = ? AND name = ?", [new, project, old])


async def delete(tx: Tx, project: str, name: str) -> None:
    await tx.execute("DELETE FROM profiles WHERE project = ? AND name = ?", [project, name])
