"""Networks in LXD's tables: networks (project_id, state, type codes), networks_config (node_id NULL
for cluster-wide keys), networks_nodes."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

_SELECT = ("SELECT n.id AS id, p.name AS project, n.name AS name, n.type AS type, n.description AS description, "
           "n.state AS state FROM networks n JOIN projects p ON p.id = n.project_id WHERE p.name = ? ")


async def _rows(tx: Tx, rows: list[dict]) -> list[dict]:
    config = await lxd.config_of(tx, "networks_config", "network_id", [r["id"] for r in rows])
    return [{"name": r["name"], "type": lxd.network_type_name(r["type"]), "description": r["description"] or "",
             "config": config.get(r["id"], {}), "status": lxd.state_name(r["state"]), "project": r["project"]}
            for r in rows]


async def get_all(tx: Tx, project: str = "default") -> list[dict]:
    return await _rows(tx, await tx.fetch(_SELECT + "ORDER BY n.name", [project]))


async def get(tx: Tx, name: str, project: str = "default") -> dict | None:
    r = await tx.fetchone(_SELECT + "AND n.name = ?", [project, name])
    return (await _rows(tx, [r]))[0] if r else None


async def create(tx: Tx, n: dict, project: str = "default") -> None:
    state = lxd.state_code(n.get("status", "Created"))
    nid, _ = await tx.execute(f"INSERT INTO networks (project_id, name, description, state, type) "
                              f"VALUES ({lxd.PROJECT_ID}, ?, ?, ?, ?)",
                              [project, n["name"], n.get("description", ""), state, lxd.network_type_code(n["type"])])
    await lxd.set_config(tx, "networks_config", "network_id", nid, n.get("config", {}))
    await tx.execute(f"INSERT INTO networks_nodes (network_id, node_id, state) VALUES (?, {lxd.LOCAL_NODE_ID}, ?)",
                     [nid, state])


async def update(tx: Tx, name: str, description: str, config: dict, project: str = "default") -> None:
    r = await tx.fetchone(_SELECT + "AND n.name = ?", [project, name])
    if r:
        await tx.execute("UPDATE networks SET description = ? WHERE id = ?", [description, r["id"]])
        await lxd.set_config(tx, "networks_config", "network_id", r["id"], config)


async def rename(tx: Tx, old: str, new: str, project: str = "default") -> None:
    await tx.execute(f"UPDATE networks SET name = ? WHERE project_id = {lxd.PROJECT_ID} AND name = ?", [new, project, old])


async def delete(tx: Tx, name: str, project: str = "default") -> None:
    await tx.execute(f"DELETE FROM networks WHERE project_id = {lxd.PROJECT_ID} AND name = ?", [project, name])
