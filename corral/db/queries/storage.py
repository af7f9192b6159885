"""Storage pools and volumes in LXD's tables: storage_pools (state), storage_pools_config,
storage_pools_nodes, storage_volumes (storage_pool_id, project_id, node_id, type code, content_type),
storage_volumes_config, storage_volumes_snapshots(+_config). LXD 5.0.2 has no creation date column for
volumes: Corral keeps it in corral_storage_volumes_dates / corral_storage_volumes_snapshots_dates."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

_POOL_ID = "(SELECT id FROM storage_pools WHERE name = ?)"


async def _pools(tx: Tx, rows: list[dict]) -> list[dict]:
    config = await lxd.config_of(tx, "storage_pools_config", "storage_pool_id", [r["id"] for r in rows])
    return [{"name": r["name"], "driver": r["driver"], "description": r["description"] or "",
             "config": config.get(r["id"], {}), "status": lxd.state_name(r["state"])} for r in rows]


async def pools(tx: Tx) -> list[dict]:
    return await _pools(tx, await tx.fetch("SELECT * FROM storage_pools ORDER BY name"))


async def pool(tx: Tx, name: str) -> dict | None:
    r = await tx.fetchone("SELECT * FROM storage_pools WHERE name = ?", [name])
    return (await _pools(tx, [r]))[0] if r else None


async def create_pool(tx: Tx, p: dict) -> None:
    pid, _ = await tx.execute("INSERT INTO storage_pools (name, driver, description, state) VALUES (?, ?, ?, ?)",
                              [p["name"], p["driver"], p.get("description", ""),
                               lxd.state_code(p.get("status", "Created"))])
    await lxd.set_config(tx, "storage_pools_config", "storage_pool_id", pid, p.get("config", {}))
    await tx.execute(f"INSERT INTO storage_pools_nodes (storage_pool_id, node_id, state) VALUES (?, {lxd.LOCAL_NODE_ID}, ?)",
                     [pid, lxd.state_code(p.get("status", "Created"))])


async def update_pool(tx: Tx, name: str, description: str, config: dict) -> None:
    r = await tx.fetchone("SELECT id FROM storage_pools WHERE name = ?", [name])
    if r:
        await tx.execute("UPDATE storage_pools SET description = ? WHERE id = ?", [description, r["id"]])
        await lxd.set_config(tx, "storage_pools_config", "storage_pool_id", r["id"], config)


async def delete_pool(tx: Tx, name: str) -> None:
    await tx.execute("DELETE FROM storage_pools WHERE name = ?", [name])


_VSELECT = ("SELECT v.id AS id, sp.name AS pool, p.name AS project, v.type AS type, v.name AS name, "
            "v.description AS description, v.content_type AS content_type, d.creation_date AS created_at "
            "FROM storage_volumes v "
            "JOIN storage_pools sp ON sp.id = v.storage_pool_id JOIN projects p ON p.id = v.project_id "
            "LEFT JOIN corral_storage_volumes_dates d ON d.storage_volume_id = v.id ")
_ORDER = " ORDER BY v.type, v.name"


async def _volumes(tx: Tx, rows: list[dict]) -> list[dict]:
    config = await lxd.config_of(tx, "storage_volumes_config", "storage_volume_id", [r["id"] for r in rows])
    return [{"id": r["id"], "pool": r["pool"], "project": r["project"], "type": lxd.volume_type_name(r["type"]),
             "name": r["name"], "description": r["description"] or "", "config": config.get(r["id"], {}),
             "content_type": "block" if r["content_type"] == 1 else "filesystem",
             "created_at": r["created_at"] or "0001-01-01T00:00:00Z"} for r in rows]


async def volumes(tx: Tx, pool: str, project: str | None = None) -> list[dict]:
    if project is None:
        rows = await tx.fetch(_VSELECT + "WHERE sp.name = ?" + _ORDER, [pool])
    else:
        rows = await tx.fetch(_VSELECT + "WHERE sp.name = ? AND p.name = ?" + _ORDER, [pool, project])
    return await _volumes(tx, rows)


async def volume(tx: Tx, pool: str, project: str, type_: str, name: str) -> dict | None:
    r = await tx.fetchone(_VSELECT + "WHERE sp.name = ? AND p.name = ? AND v.type = ? AND v.name = ?",
                          [pool, project, lxd.volume_type_code(type_), name])
    return (await _volumes(tx, [r]))[0] if r else None


async def create_custom_volume(tx: Tx, rec: dict, snaps: list[dict]) -> bool:
    """Record a new custom volume with its snapshots; False (nothing written) when the name is taken."""
    if await volume(tx, rec["pool"], rec["project"], "custom", rec["name"]) is not None:
        return False
    await create_volume(tx, rec)
    v = await volume(tx, rec["pool"], rec["project"], "custom", rec["name"])
    for s in snaps:
        await create_volume_snapshot(tx, v["id"], s)
    return True


async def create_volume(tx: Tx, v: dict) -> None:
    vid, _ = await tx.execute(
        f"INSERT INTO storage_volumes (name, storage_pool_id, node_id, type, description, project_id, content_type) "
        f"VALUES (?, {_POOL_ID}, {lxd.LOCAL_NODE_ID}, ?, ?, {lxd.PROJECT_ID}, ?)",
        [v["name"], v["pool"], lxd.volume_type_code(v["type"]), v.get("description", ""), v["project"],
         1 if v.get("content_type") == "block" else 0])
    await lxd.set_config(tx, "storage_volumes_config", "storage_volume_id", vid, v.get("config", {}))
    await tx.execute("INSERT INTO corral_storage_volumes_dates (storage_volume_id, creation_date) VALUES (?, ?)",
                     [vid, v["created_at"]])


_VWHERE = f"storage_pool_id = {_POOL_ID} AND project_id = {lxd.PROJECT_ID} AND type = ? AND name = ?"


async def rename_volume(tx: Tx, pool: str, project: str, type_: str, old: str, new: str) -> None:
    await tx.execute(f"UPDATE storage_volumes SET name = ? WHERE {_VWHERE}",
                     [new, pool, project, lxd.volume_type_code(type_), old])


async def delete_volume(tx: Tx, pool: str, project: str, type_: str, name: str) -> None:
    await tx.execute(f"DELETE FROM storage_volumes WHERE {_VWHERE}", [pool, project, lxd.volume_type_code(type_), name])


async def all_volumes(tx: Tx, type_: str | None = None) -> list[dict]:
    if type_ is None:
        return await _volumes(tx, await tx.fetch(_VSELECT + "ORDER BY sp.name, v.type, v.name"))
    return await _volumes(tx, await tx.fetch(_VSELECT + "WHERE v.type = ? ORDER BY sp.name, v.name",
                                             [lxd.volume_type_code(type_)]))


async def update_volume(tx: Tx, id_: int, description: str, config: dict) -> None:
    await tx.execute("UPDATE storage_volumes SET description = ? WHERE id = ?", [description, id_])
    await lxd.set_config(tx, "storage_volumes_config", "storage_volume_id", id_, config)


async def move_volume(tx: Tx, id_: int, pool: str, name: str) -> None:
    await tx.execute(f"UPDATE storage_volumes SET storage_pool_id = {_POOL_ID}, name = ? WHERE id = ?", [pool, name, id_])


_SSELECT = ("SELECT s.id AS id, s.storage_volume_id AS volume_id, s.name AS name, s.description AS description, "
            "d.creation_date AS created_at, s.expiry_date AS expires_at FROM storage_volumes_snapshots s "
            "LEFT JOIN corral_storage_volumes_snapshots_dates d ON d.storage_volume_snapshot_id = s.id ")


async def _vsnaps(tx: Tx, rows: list[dict]) -> list[dict]:
    config = await lxd.config_of(tx, "storage_volumes_snapshots_config", "storage_volume_snapshot_id",
                                 [r["id"] for r in rows])
    return [{"id": r["id"], "volume_id": r["volume_id"], "name": r["name"], "description": r["description"] or "",
             "config": config.get(r["id"], {}), "created_at": r["created_at"] or "0001-01-01T00:00:00Z",
             "expires_at": r["expires_at"] or "0001-01-01T00:00:00Z"} for r in rows]


async def volume_snapshots(tx: Tx, volume_id: int) -> list[dict]:
    return await _vsnaps(tx, await tx.fetch(_SSELECT + "WHERE s.storage_volume_id = ? ORDER BY d.creation_date, s.id",
                                            [volume_id]))


async def all_volume_snapshots(tx: Tx) -> list[dict]:
    return await _vsnaps(tx, await tx.fetch(_SSELECT + "ORDER BY s.id"))


async def create_volume_snapshot(tx: Tx, volume_id: int, s: dict) -> None:
    sid, _ = await tx.execute("INSERT INTO storage_volumes_snapshots (storage_volume_id, name, description, "
                              "expiry_date) VALUES (?, ?, ?, ?)",
                              [volume_id, s["name"], s.get("description", ""), s["expires_at"]])
    await lxd.set_config(tx, "storage_volumes_snapshots_config", "storage_volume_snapshot_id", sid, s.get("config", {}))
    await tx.execute("INSERT INTO corral_storage_volumes_snapshots_dates (storage_volume_snapshot_id, creation_date) "
                     "VALUES (?, ?)", [sid, s["created_at"]])


async def update_volume_snapshot(tx: Tx, volume_id: int, name: str, description: str, expires_at: str) -> None:
    await tx.execute("UPDATE storage_volumes_snapshots SET description = ?, expiry_date = ? "
                     "WHERE storage_volume_id = ? AND name = ?", [description, expires_at, volume_id, name])


async def rename_volume_snapshot(tx: Tx, volume_id: int, old: str, new: str) -> None:
    await tx.execute("UPDATE storage_volumes_snapshots SET name = ? WHERE storage_volume_id = ? AND name = ?",
                     [new, volume_id, old])


async def delete_volume_snapshot(tx: Tx, volume_id: int, name: str) -> None:
    await tx.execute("DELETE FROM storage_volumes_snapshots WHERE storage_volume_id = ? AND name = ?", [volume_id, name])


async def delete_volume_snapshots(tx: Tx, volume_id: int) -> None:
    await tx.execute("DELETE FROM storage_volumes_snapshots WHERE storage_volume_id = ?", [volume_id])


async def project_custom_volumes(tx: Tx, project: str) -> list[dict]:
    """Every custom volume of a project, in every pool (project limits count them)."""
    rows = await tx.fetch(_VSELECT + "WHERE p.name = ? AND v.type = ? ORDER BY sp.name, v.name",
                          [project, lxd.volume_type_code("custom")])
    return await _volumes(tx, rows)
