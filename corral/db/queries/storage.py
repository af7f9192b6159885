"""Storage pools and volumes."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import dumps, loads


def _pool(r: dict) -> dict:
    return {"name": r["name"], "driver": r["driver"], "description": r["description"],
            "config": loads(r["config"]), "status": r["status"]}


async def pools(tx: Tx) -> list[dict]:
    return [_pool(r) for r in await tx.fetch("SELECT * FROM storage_pools ORDER BY name")]


async def pool(tx: Tx, name: str) -> dict | None:
    r = await tx.fetchone("SELECT * FROM storage_pools WHERE name = ?", [name])
    return _pool(r) if r else None


async def create_pool(tx: Tx, p: dict) -> None:
    await tx.execute("INSERT INTO storage_pools (name, driver, description, config, status) VALUES (?, ?, ?, ?, ?)",
                     [p["name"], p["driver"], p.get("description", ""), dumps(p.get("config", {})),
                      p.get("status", "Created")])


async def update_pool(tx: Tx, name: str, description: str, config: dict) -> None:
    await tx.execute("UPDATE storage_pools SET description = ?, config = ? WHERE name = ?",
                     [description, dumps(config), name])


async def delete_pool(tx: Tx, name: str) -> None:
    await tx.execute("DELETE FROM storage_pools WHERE name = ?", [name])


def _volume(r: dict) -> dict:
    return {"id": r["id"], "pool": r["pool"], "project": r["project"], "type": r["type"], "name": r["name"],
            "description": r["description"], "config": loads(r["config"]), "created_at": r["created_at"]}


async def volumes(tx: Tx, pool: str, project: str | None = None) -> list[dict]:
    if project is None:
        rows = await tx.fetch("SELECT * FROM storage_volumes WHERE pool = ? ORDER BY type, name", [pool])
    else:
        rows = await tx.fetch("SELECT * FROM storage_volumes WHERE pool = ? AND project = ? ORDER BY type, name",
                              [pool, project])
    return [_volume(r) for r in rows]


async def volume(tx: Tx, pool: str, project: str, type_: str, name: str) -> dict | None:
    r = await tx.fetchone("SELECT * FROM storage_volumes WHERE pool = ? AND project = ? AND type = ? AND name = ?",
                          [pool, project, type_, name])
    return _volume(r) if r else None


async def create_volume(tx: Tx, v: dict) -> None:
    await tx.execute("INSERT INTO storage_volumes (pool, project, type, name, description, config, created_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [v["pool"], v["project"], v["type"], v["name"], v.get("description", ""),
                      dumps(v.get("config", {})), v["created_at"]])


async def rename_volume(tx: Tx, pool: str, project: str, type_: str, old: str, new: str) -> None:
    await tx.execute("UPDATE storage_volumes SET name = ? WHERE pool = ? AND project = ? AND type = ? AND name = ?",
                     [new, pool, project, type_, old])


async def delete_volume(tx: Tx, pool: str, project: str, type_: str, name: str) -> None:
    await tx.execute("DELETE FROM storage_volumes WHERE pool = ? AND project = ? AND type = ? AND name = ?",
                     [pool, project, type_, name])


async def all_volumes(tx: Tx, type_: str | None = None) -> list[dict]:
    if type_ is None:
        return [_volume(r) for r in await tx.fetch("SELECT * FROM storage_volumes ORDER BY pool, type, name")]
    return [_volume(r) for r in await tx.fetch("SELECT * FROM storage_volumes WHERE type = ? ORDER BY pool, name",
                                               [type_])]


async def update_volume(tx: Tx, id_: int, description: str, config: dict) -> None:
    await tx.execute("UPDATE storage_volumes SET description = ?, config = ? WHERE id = ?",
                     [description, dumps(config), id_])


async def move_volume(tx: Tx, id_: int, pool: str, name: str) -> None:
    await tx.execute("UPDATE storage_volumes SET pool = ?, name = ? WHERE id = ?", [pool, name, id_])


def _vsnap(r: dict) -> dict:
    return {"id": r["id"], "volume_id": r["volume_id"], "name": r["name"], "description": r["description"],
            "config": loads(r["config"]), "created_at": r["created_at"], "expires_at": r["expires_at"]}


async def volume_snapshots(tx: Tx, volume_id: int) -> list[dict]:
    return [_vsnap(r) for r in await tx.fetch(
        "SELECT * FROM storage_volumes_snapshots WHERE volume_id = ? ORDER BY created_at, id", [volume_id])]


async def all_volume_snapshots(tx: Tx) -> list[dict]:
    return [_vsnap(r) for r in await tx.fetch("SELECT * FROM storage_volumes_snapshots ORDER BY id")]


async def create_volume_snapshot(tx: Tx, volume_id: int, s: dict) -> None:
    await tx.execute("INSERT INTO storage_volumes_snapshots (volume_id, name, description, config, created_at, "
                     "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                     [volume_id, s["name"], s.get("description", ""), dumps(s.get("config", {})), s["created_at"],
                      s["expires_at"]])


async def update_volume_snapshot(tx: Tx, volume_id: int, name: str, description: str, expires_at: str) -> None:
    await tx.execute("UPDATE storage_volumes_snapshots SET description = ?, expires_at = ? "
                     "WHERE volume_id = ? AND name = ?", [description, expires_at, volume_id, name])


async def rename_volume_snapshot(tx: Tx, volume_id: int, old: str, new: str) -> None:
    await tx.execute("UPDATE storage_volumes_snapshots SET name = ? WHERE volume_id = ? AND name = ?",
                     [new, volume_id, old])


async def delete_volume_snapshot(tx: Tx, volume_id: int, name: str) -> None:
    await tx.execute("DELETE FROM storage_volumes_snapshots WHERE volume_id = ? AND name = ?", [volume_id, name])


async def delete_volume_snapshots(tx: Tx, volume_id: int) -> None:
    await tx.execute("DELETE FROM storage_volumes_snapshots WHERE volume_id = ?", [volume_id])


async def project_custom_volumes(tx: Tx, project: str) -> list[dict]:
    """Every custom volume of a project, in every pool (project limits count them)."""
    rows = await tx.fetch("SELECT * FROM storage_volumes WHERE project = ? AND type = 'custom' ORDER BY pool, name",
                          [project])
    return [_volume(r) for r in rows]
