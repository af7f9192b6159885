"""Where instances live in a cluster, and moving them between members (LXD's instances.node_id and
the node_id of their volumes' storage_volumes rows), evacuation state (nodes.state) and the
volatile keys evacuation keeps (volatile.evacuate.origin)."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

_CONTAINER = lxd.volume_type_code("container")


async def location(tx: Tx, project: str, name: str) -> dict | None:
    """{id, node_id, node, address, type (LXD's code: 1 a VM)} of an instance, None when there is none."""
    return await tx.fetchone(
        "SELECT i.id AS id, i.node_id AS node_id, n.name AS node, n.address AS address, i.type AS type "
        "FROM instances i "
        "JOIN projects p ON p.id = i.project_id LEFT JOIN nodes n ON n.id = i.node_id "
        "WHERE p.name = ? AND i.name = ?", [project, name])


async def move(tx: Tx, instance_id: int, node_id: int, new_name: str) -> None:
    """The instance (renamed to `new_name`) and its instance volume rows now belong to `node_id`.
    Its snapshots' rows follow their parents' (instances_snapshots, storage_volumes_snapshots)."""
    r = await tx.fetchone("SELECT name, project_id, node_id FROM instances WHERE id = ?", [instance_id])
    if r is None:
        return
    await tx.execute("UPDATE storage_volumes SET node_id = ?, name = ? WHERE project_id = ? AND type = ? "
                     "AND name = ? AND (node_id = ? OR node_id IS NULL)",
                     [node_id, new_name, r["project_id"], _CONTAINER, r["name"], r["node_id"]])
    await tx.execute("UPDATE instances SET node_id = ?, name = ? WHERE id = ?", [node_id, new_name, instance_id])


async def on_node(tx: Tx, node_id: int) -> list[dict]:
    """{project, name} of every instance on a member, by project and name."""
    return await tx.fetch("SELECT p.name AS project, i.name AS name FROM instances i JOIN projects p "
                          "ON p.id = i.project_id WHERE i.node_id = ? ORDER BY p.name, i.name", [node_id])


async def with_config(tx: Tx, key: str, value: str) -> list[dict]:
    """{project, name, node} of every instance whose own config sets `key` to `value`."""
    return await tx.fetch("SELECT p.name AS project, i.name AS name, n.name AS node FROM instances i "
                          "JOIN projects p ON p.id = i.project_id JOIN instances_config c ON c.instance_id = i.id "
                          "LEFT JOIN nodes n ON n.id = i.node_id WHERE c.key = ? AND c.value = ? "
                          "ORDER BY p.name, i.name", [key, value])


async def set_config_key(tx: Tx, project: str, name: str, key: str, value: str | None) -> None:
    """Set (None: remove) one key of an instance's own config."""
    r = await tx.fetchone(f"SELECT id FROM instances WHERE project_id = {lxd.PROJECT_ID} AND name = ?",
                          [project, name])
    if r is None:
        return
    await tx.execute("DELETE FROM instances_config WHERE instance_id = ? AND key = ?", [r["id"], key])
    if value is not None:
        await tx.execute("INSERT INTO instances_config (instance_id, key, value) VALUES (?, ?, ?)",
                         [r["id"], key, value])


async def set_node_state(tx: Tx, node_id: int, state: int) -> None:
    await tx.execute("UPDATE nodes SET state = ? WHERE id = ?", [state, node_id])
