"""Storage pools and volumes in LXD's tables: storage_pools (state), storage_pools_config,
storage_pools_nodes, storage_volumes (storage_pool_id, project_id, node_id, type code, content_type),
storage_volumes_config, storage_volumes_snapshots(+_config). LXD 5.0.2 has no creation date column for
volumes: Corral keeps it in corral_storage_volumes_dates / corral_storage_volumes_snapshots_dates."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd
from corral.db.queries import member_config as mc

_POOL_ID = "(SELECT id FROM storage_pools WHERE name = ?)"
_TABLE, _FK = "storage_pools_config", "storage_pool_id"


async def _pools(tx: Tx, rows: list[dict], member: int | None = None) -> list[dict]:
    """Pool records as member `member` (default: this one) sees them: its config (cluster-wide and
    its own keys), the pool's global status, its own status (None where the pool is not defined
    on it) and every member's (`members`: {name: status}, `locations`: their names)."""
    member = lxd.LOCAL_NODE_ID if member is None else member
    ids = [r["id"] for r in rows]
    config = await mc.seen_by(tx, _TABLE, _FK, ids, member)
    nodes: dict[int, list[dict]] = {}
    for n in await lxd.fetch_in(tx, "SELECT spn.storage_pool_id AS owner, spn.node_id AS node_id, "
                                    "spn.state AS state, n.name AS name FROM storage_pools_nodes spn "
                                    "JOIN nodes n ON n.id = spn.node_id WHERE spn.storage_pool_id IN ({marks}) "
                                    "ORDER BY n.name", ids):
        nodes.setdefault(n["owner"], []).append(n)
    out = []
    for r in rows:
        ns = nodes.get(r["id"], [])
        own = next((n for n in ns if n["node_id"] == member), None)
        out.append({"id": r["id"], "name": r["name"], "driver": r["driver"], "description": r["description"] or "",
                    "config": config.get(r["id"], {}), "status": lxd.state_name(r["state"]),
                    "local_status": lxd.state_name(own["state"]) if own else None,
                    "members": {n["name"]: lxd.state_name(n["state"]) for n in ns},
                    "locations": [n["name"] for n in ns]})
    return out


async def pools(tx: Tx) -> list[dict]:
    return await _pools(tx, await tx.fetch("SELECT * FROM storage_pools ORDER BY name"))


async def pool(tx: Tx, name: str, member: int | None = None) -> dict | None:
    r = await tx.fetchone("SELECT * FROM storage_pools WHERE name = ?", [name])
    return (await _pools(tx, [r], member))[0] if r else None


async def create_pool(tx: Tx, p: dict, member_keys: frozenset[str] = frozenset()) -> int:
    """A pool made on this member alone (a standalone server or a one-member cluster): Created
    here, its member-specific keys in this member's scope."""
    state = lxd.state_code(p.get("status", "Created"))
    pid, _ = await tx.execute("INSERT INTO storage_pools (name, driver, description, state) VALUES (?, ?, ?, ?)",
                              [p["name"], p["driver"], p.get("description", ""), state])
    await mc.set_split(tx, _TABLE, _FK, pid, lxd.LOCAL_NODE_ID, p.get("config", {}), member_keys)
    await tx.execute("INSERT INTO storage_pools_nodes (storage_pool_id, node_id, state) VALUES (?, ?, ?)",
                     [pid, lxd.LOCAL_NODE_ID, state])
    return pid


async def define_on_member(tx: Tx, name: str, driver: str, member: str, config: dict) -> str:
    """LXD's CreatePendingStoragePool: the pool (made Pending when new) defined on `member` with
    its member-specific `config`. "" when done, else what was wrong: "member" (no such member),
    "driver" (the pool has another driver), "state" (the pool is not pending), "defined" (it is
    already defined on that member)."""
    node = await tx.fetchone("SELECT id FROM nodes WHERE name = ?", [member])
    if node is None:
        return "member"
    r = await tx.fetchone("SELECT id, driver, state FROM storage_pools WHERE name = ?", [name])
    if r is None:
        pid, _ = await tx.execute("INSERT INTO storage_pools (name, driver, description, state) VALUES (?, ?, '', ?)",
                                  [name, driver, lxd.state_code("Pending")])
    else:
        if r["driver"] != driver:
            return "driver"
        if r["state"] != lxd.state_code("Pending"):
            return "state"
        pid = r["id"]
    if await tx.fetchone("SELECT id FROM storage_pools_nodes WHERE storage_pool_id = ? AND node_id = ?",
                         [pid, node["id"]]):
        return "defined"
    await tx.execute("INSERT INTO storage_pools_nodes (storage_pool_id, node_id, state) VALUES (?, ?, ?)",
                     [pid, node["id"], lxd.state_code("Pending")])
    await mc.set_scope(tx, _TABLE, _FK, pid, node["id"], config)
    return ""


async def member_configs(tx: Tx, pool_id: int) -> tuple[list[str], dict[str, dict]]:
    """(members the pool is not defined on, {member name: its member-specific config})."""
    members = await tx.fetch("SELECT id, name FROM nodes ORDER BY name")
    defined = {r["node_id"] for r in await tx.fetch("SELECT node_id FROM storage_pools_nodes "
                                                     "WHERE storage_pool_id = ?", [pool_id])}
    rows = await mc.members_rows(tx, _TABLE, _FK, pool_id)
    return ([m["name"] for m in members if m["id"] not in defined],
            {m["name"]: rows.get(m["id"], {}) for m in members if m["id"] in defined})


async def set_global_config(tx: Tx, pool_id: int, config: dict) -> None:
    await mc.set_scope(tx, _TABLE, _FK, pool_id, None, config)


async def set_member_config(tx: Tx, pool_id: int, config: dict, member: int | None = None) -> None:
    await mc.set_scope(tx, _TABLE, _FK, pool_id, lxd.LOCAL_NODE_ID if member is None else member, config)


async def set_pool_state(tx: Tx, pool_id: int, status: str) -> None:
    await tx.execute("UPDATE storage_pools SET state = ? WHERE id = ?", [lxd.state_code(status), pool_id])


async def set_member_state(tx: Tx, pool_id: int, status: str, member: int | None = None) -> None:
    """A member's state of the pool (LXD's storagePoolNodeState), this member's by default."""
    await tx.execute("UPDATE storage_pools_nodes SET state = ? WHERE storage_pool_id = ? AND node_id = ?",
                     [lxd.state_code(status), pool_id, lxd.LOCAL_NODE_ID if member is None else member])


async def join_member(tx: Tx, pool_id: int, config: dict) -> None:
    """A joining member's part of a pool it made before it joined (LXD's
    UpdateStoragePoolAfterNodeJoin): Created on it, with its member-specific config."""
    await tx.execute("INSERT INTO storage_pools_nodes (storage_pool_id, node_id, state) VALUES (?, ?, ?)",
                     [pool_id, lxd.LOCAL_NODE_ID, lxd.state_code("Created")])
    await mc.set_scope(tx, _TABLE, _FK, pool_id, lxd.LOCAL_NODE_ID, config)


async def localise_member_keys(tx: Tx, pool_id: int, member_keys) -> int:
    return await mc.localise(tx, _TABLE, _FK, pool_id, lxd.LOCAL_NODE_ID, member_keys)


async def update_pool(tx: Tx, name: str, description: str, config: dict,
                      member_keys: frozenset[str] = frozenset()) -> None:
    """This member's view of the pool's config stored: the cluster-wide keys and its own."""
    r = await tx.fetchone("SELECT id FROM storage_pools WHERE name = ?", [name])
    if r:
        await tx.execute("UPDATE storage_pools SET description = ? WHERE id = ?", [description, r["id"]])
        await mc.set_split(tx, _TABLE, _FK, r["id"], lxd.LOCAL_NODE_ID, config, member_keys)


async def delete_pool(tx: Tx, name: str) -> None:
    await tx.execute("DELETE FROM storage_pools WHERE name = ?", [name])


_VSELECT = ("SELECT v.id AS id, sp.name AS pool, p.name AS project, v.type AS type, v.name AS name, "
            "v.description AS description, v.content_type AS content_type, d.creation_date AS created_at, "
            "n.name AS location, v.node_id AS node_id FROM storage_volumes v "
            "JOIN storage_pools sp ON sp.id = v.storage_pool_id JOIN projects p ON p.id = v.project_id "
            "LEFT JOIN nodes n ON n.id = v.node_id "
            "LEFT JOIN corral_storage_volumes_dates d ON d.storage_volume_id = v.id ")
# Volumes of local pools (dir, btrfs: every driver Corral has) belong to one member: reads and
# writes by name are this member's (LXD's GetLocalStoragePoolVolume); listings show every member's
# with its `location`.
_LOCAL = "(v.node_id = {node} OR v.node_id IS NULL)"
_ORDER = " ORDER BY v.type, v.name"


async def _volumes(tx: Tx, rows: list[dict]) -> list[dict]:
    config = await lxd.config_of(tx, "storage_volumes_config", "storage_volume_id", [r["id"] for r in rows])
    return [{"id": r["id"], "pool": r["pool"], "project": r["project"], "type": lxd.volume_type_name(r["type"]),
             "name": r["name"], "description": r["description"] or "", "config": config.get(r["id"], {}),
             "content_type": "block" if r["content_type"] == 1 else "filesystem",
             "created_at": r["created_at"] or "0001-01-01T00:00:00Z", "location": r["location"] or "none",
             "node_id": r["node_id"]} for r in rows]


def _local() -> str:
    return _LOCAL.format(node=int(lxd.LOCAL_NODE_ID))


async def volumes(tx: Tx, pool: str, project: str | None = None) -> list[dict]:
    """Every member's volumes of a pool (each with its `location`)."""
    if project is None:
        rows = await tx.fetch(_VSELECT + "WHERE sp.name = ?" + _ORDER, [pool])
    else:
        rows = await tx.fetch(_VSELECT + "WHERE sp.name = ? AND p.name = ?" + _ORDER, [pool, project])
    return await _volumes(tx, rows)


async def volume(tx: Tx, pool: str, project: str, type_: str, name: str) -> dict | None:
    """This member's volume of that name."""
    r = await tx.fetchone(_VSELECT + f"WHERE sp.name = ? AND p.name = ? AND v.type = ? AND v.name = ? AND {_local()}",
                          [pool, project, lxd.volume_type_code(type_), name])
    return (await _volumes(tx, [r]))[0] if r else None


async def volume_locations(tx: Tx, pool: str, project: str, type_: str, name: str) -> list[str]:
    """The members that have a volume of that name in the pool."""
    rows = await tx.fetch("SELECT DISTINCT n.name AS name FROM storage_volumes v JOIN nodes n ON n.id = v.node_id "
                          f"WHERE v.storage_pool_id = {_POOL_ID} AND v.project_id = {lxd.PROJECT_ID} "
                          "AND v.type = ? AND v.name = ? ORDER BY n.name",
                          [pool, project, lxd.volume_type_code(type_), name])
    return [r["name"] for r in rows]


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


def _vwhere() -> str:
    """This member's volume by (pool, project, type, name)."""
    node = int(lxd.LOCAL_NODE_ID)
    return (f"storage_pool_id = {_POOL_ID} AND project_id = {lxd.PROJECT_ID} AND type = ? AND name = ? "
            f"AND (node_id = {node} OR node_id IS NULL)")


async def rename_volume(tx: Tx, pool: str, project: str, type_: str, old: str, new: str) -> None:
    await tx.execute(f"UPDATE storage_volumes SET name = ? WHERE {_vwhere()}",
                     [new, pool, project, lxd.volume_type_code(type_), old])


async def delete_volume(tx: Tx, pool: str, project: str, type_: str, name: str) -> None:
    await tx.execute(f"DELETE FROM storage_volumes WHERE {_vwhere()}", [pool, project, lxd.volume_type_code(type_), name])


async def all_volumes(tx: Tx, type_: str | None = None, every_member: bool = False) -> list[dict]:
    """This member's volumes (with `every_member`, all the cluster's) of every pool."""
    where = "" if every_member else f"WHERE {_local()} "
    if type_ is None:
        return await _volumes(tx, await tx.fetch(_VSELECT + where + "ORDER BY sp.name, v.type, v.name"))
    where = (where + "AND " if where else "WHERE ") + "v.type = ? "
    return await _volumes(tx, await tx.fetch(_VSELECT + where + "ORDER BY sp.name, v.name",
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
