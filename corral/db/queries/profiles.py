"""Profiles in LXD's tables: profiles (id, name, description, project_id), profiles_config,
profiles_devices + profiles_devices_config."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

_SELECT = ("SELECT pr.id AS id, pr.name AS name, pr.description AS description FROM profiles pr "
           "JOIN projects p ON p.id = pr.project_id WHERE p.name = ? ")


async def _rows(tx: Tx, rows: list[dict]) -> list[dict]:
    ids = [r["id"] for r in rows]
    config = await lxd.config_of(tx, "profiles_config", "profile_id", ids)
    devices = await lxd.devices_of(tx, "profiles", "profile_id", ids)
    return [{"name": r["name"], "description": r["description"] or "", "config": config.get(r["id"], {}),
             "devices": devices.get(r["id"], {})} for r in rows]


async def _id(tx: Tx, project: str, name: str) -> int | None:
    r = await tx.fetchone(_SELECT + "AND pr.name = ?", [project, name])
    return r["id"] if r else None


async def names(tx: Tx, project: str) -> list[str]:
    return [r["name"] for r in await tx.fetch(_SELECT + "ORDER BY pr.name", [project])]


async def get_all(tx: Tx, project: str) -> list[dict]:
    """`project`'s profiles, memoised until the next write to the database (every instance
    listing expands them)."""
    rows = tx.memo(("profiles", project))
    if rows is None:
        rows = await _rows(tx, await tx.fetch(_SELECT + "ORDER BY pr.name", [project]))
        tx.remember(("profiles", project), rows)
    return [{**r, "config": dict(r["config"]), "devices": {k: dict(d) for k, d in r["devices"].items()}}
            for r in rows]


async def get(tx: Tx, project: str, name: str) -> dict | None:
    r = await tx.fetchone(_SELECT + "AND pr.name = ?", [project, name])
    return (await _rows(tx, [r]))[0] if r else None


async def create(tx: Tx, project: str, p: dict) -> None:
    pid, _ = await tx.execute(f"INSERT INTO profiles (name, description, project_id) VALUES (?, ?, {lxd.PROJECT_ID})",
                              [p["name"], p.get("description", ""), project])
    await lxd.set_config(tx, "profiles_config", "profile_id", pid, p.get("config", {}))
    await lxd.set_devices(tx, "profiles", "profile_id", pid, p.get("devices", {}))


async def update(tx: Tx, project: str, name: str, p: dict) -> None:
    pid = await _id(tx, project, name)
    if pid is None:
        return
    await tx.execute("UPDATE profiles SET description = ? WHERE id = ?", [p.get("description", ""), pid])
    await lxd.set_config(tx, "profiles_config", "profile_id", pid, p.get("config", {}))
    await lxd.set_devices(tx, "profiles", "profile_id", pid, p.get("devices", {}))


async def rename(tx: Tx, project: str, old: str, new: str) -> None:
    await tx.execute(f"UPDATE profiles SET name = ? WHERE project_id = {lxd.PROJECT_ID} AND name = ?",
                     [new, project, old])


async def delete(tx: Tx, project: str, name: str) -> None:
    await tx.execute(f"DELETE FROM profiles WHERE project_id = {lxd.PROJECT_ID} AND name = ?", [project, name])
