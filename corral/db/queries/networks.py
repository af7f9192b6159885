"""Networks in LXD's tables: networks (project_id, state, type codes), networks_config (node_id NULL
for cluster-wide keys, a member's id for its own keys), networks_nodes (each member's state)."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd
from corral.db.queries import member_config as mc

_SELECT = ("SELECT n.id AS id, p.name AS project, n.name AS name, n.type AS type, n.description AS description, "
           "n.state AS state FROM networks n JOIN projects p ON p.id = n.project_id WHERE p.name = ? ")
_TABLE, _FK = "networks_config", "network_id"


async def _rows(tx: Tx, rows: list[dict], member: int | None = None) -> list[dict]:
    """Network records as member `member` (default: this one) sees them: its config, the global
    status, its own (`local_status`, None where the network is not defined on it), every member's."""
    member = lxd.LOCAL_NODE_ID if member is None else member
    ids = [r["id"] for r in rows]
    config = await mc.seen_by(tx, _TABLE, _FK, ids, member)
    nodes: dict[int, list[dict]] = {}
    for n in await lxd.fetch_in(tx, "SELECT nn.network_id AS owner, nn.node_id AS node_id, nn.state AS state, "
                                    "nd.name AS name FROM networks_nodes nn JOIN nodes nd ON nd.id = nn.node_id "
                                    "WHERE nn.network_id IN ({marks}) ORDER BY nd.name", ids):
        nodes.setdefault(n["owner"], []).append(n)
    out = []
    for r in rows:
        ns = nodes.get(r["id"], [])
        own = next((n for n in ns if n["node_id"] == member), None)
        out.append({"id": r["id"], "name": r["name"], "type": lxd.network_type_name(r["type"]),
                    "description": r["description"] or "", "config": config.get(r["id"], {}),
                    "status": lxd.state_name(r["state"]), "project": r["project"],
                    "local_status": lxd.state_name(own["state"]) if own else None,
                    "members": {n["name"]: lxd.state_name(n["state"]) for n in ns},
                    "locations": [n["name"] for n in ns]})
    return out


async def get_all(tx: Tx, project: str = "default") -> list[dict]:
    return await _rows(tx, await tx.fetch(_SELECT + "ORDER BY n.name", [project]))


async def get(tx: Tx, name: str, project: str = "default", member: int | None = None) -> dict | None:
    r = await tx.fetchone(_SELECT + "AND n.name = ?", [project, name])
    return (await _rows(tx, [r], member))[0] if r else None


async def create(tx: Tx, n: dict, project: str = "default", member_keys: frozenset[str] = frozenset()) -> int:
    """A network made on this member alone (standalone, or a cluster of one member)."""
    state = lxd.state_code(n.get("status", "Created"))
    nid, _ = await tx.execute(f"INSERT INTO networks (project_id, name, description, state, type) "
                              f"VALUES ({lxd.PROJECT_ID}, ?, ?, ?, ?)",
                              [project, n["name"], n.get("description", ""), state, lxd.network_type_code(n["type"])])
    await mc.set_split(tx, _TABLE, _FK, nid, lxd.LOCAL_NODE_ID, n.get("config", {}), member_keys)
    await tx.execute("INSERT INTO networks_nodes (network_id, node_id, state) VALUES (?, ?, ?)",
                     [nid, lxd.LOCAL_NODE_ID, state])
    return nid


async def define_on_member(tx: Tx, name: str, ntype: str, member: str, config: dict,
                           project: str = "default") -> str:
    """LXD's CreatePendingNetwork: "" when done, else "member" (no such member), "type" (another
    type), "state" (not pending), "defined" (already defined on that member)."""
    node = await tx.fetchone("SELECT id FROM nodes WHERE name = ?", [member])
    if node is None:
        return "member"
    r = await tx.fetchone(_SELECT + "AND n.name = ?", [project, name])
    if r is None:
        nid, _ = await tx.execute(f"INSERT INTO networks (project_id, name, description, state, type) "
                                  f"VALUES ({lxd.PROJECT_ID}, ?, '', ?, ?)",
                                  [project, name, lxd.state_code("Pending"), lxd.network_type_code(ntype)])
    else:
        if r["type"] != lxd.network_type_code(ntype):
            return "type"
        if r["state"] != lxd.state_code("Pending"):
            return "state"
        nid = r["id"]
    if await tx.fetchone("SELECT id FROM networks_nodes WHERE network_id = ? AND node_id = ?", [nid, node["id"]]):
        return "defined"
    await tx.execute("INSERT INTO networks_nodes (network_id, node_id, state) VALUES (?, ?, ?)",
                     [nid, node["id"], lxd.state_code("Pending")])
    await mc.set_scope(tx, _TABLE, _FK, nid, node["id"], config)
    return ""


async def member_configs(tx: Tx, network_id: int) -> tuple[list[str], dict[str, dict]]:
    """(members the network is not defined on, {member name: its member-specific config})."""
    members = await tx.fetch("SELECT id, name FROM nodes ORDER BY name")
    defined = {r["node_id"] for r in await tx.fetch("SELECT node_id FROM networks_nodes WHERE network_id = ?",
                                                     [network_id])}
    rows = await mc.members_rows(tx, _TABLE, _FK, network_id)
    return ([m["name"] for m in members if m["id"] not in defined],
            {m["name"]: rows.get(m["id"], {}) for m in members if m["id"] in defined})


async def set_global_config(tx: Tx, network_id: int, config: dict) -> None:
    await mc.set_scope(tx, _TABLE, _FK, network_id, None, config)


async def set_member_config(tx: Tx, network_id: int, config: dict, member: int | None = None) -> None:
    await mc.set_scope(tx, _TABLE, _FK, network_id, lxd.LOCAL_NODE_ID if member is None else member, config)


async def set_state(tx: Tx, network_id: int, status: str) -> None:
    await tx.execute("UPDATE networks SET state = ? WHERE id = ?", [lxd.state_code(status), network_id])


async def set_member_state(tx: Tx, network_id: int, status: str, member: int | None = None) -> None:
    await tx.execute("UPDATE networks_nodes SET state = ? WHERE network_id = ? AND node_id = ?",
                     [lxd.state_code(status), network_id, lxd.LOCAL_NODE_ID if member is None else member])


async def set_description(tx: Tx, network_id: int, description: str) -> None:
    await tx.execute("UPDATE networks SET description = ? WHERE id = ?", [description, network_id])


async def join_member(tx: Tx, network_id: int, config: dict) -> None:
    """A joining member's part of a network it made as it joined: Created on it, its own keys."""
    await tx.execute("INSERT INTO networks_nodes (network_id, node_id, state) VALUES (?, ?, ?)",
                     [network_id, lxd.LOCAL_NODE_ID, lxd.state_code("Created")])
    await mc.set_scope(tx, _TABLE, _FK, network_id, lxd.LOCAL_NODE_ID, config)


async def localise_member_keys(tx: Tx, network_id: int, member_keys) -> int:
    return await mc.localise(tx, _TABLE, _FK, network_id, lxd.LOCAL_NODE_ID, member_keys)


async def update(tx: Tx, name: str, description: str, config: dict, project: str = "default",
                 member_keys: frozenset[str] = frozenset()) -> None:
    """This member's view of the network's config stored: the cluster-wide keys and its own."""
    r = await tx.fetchone(_SELECT + "AND n.name = ?", [project, name])
    if r:
        await tx.execute("UPDATE networks SET description = ? WHERE id = ?", [description, r["id"]])
        await mc.set_split(tx, _TABLE, _FK, r["id"], lxd.LOCAL_NODE_ID, config, member_keys)


async def rename(tx: Tx, old: str, new: str, project: str = "default") -> None:
    await tx.execute(f"UPDATE networks SET name = ? WHERE project_id = {lxd.PROJECT_ID} AND name = ?", [new, project, old])


async def delete(tx: Tx, name: str, project: str = "default") -> None:
    await tx.execute(f"DELETE FROM networks WHERE project_id = {lxd.PROJECT_ID} AND name = ?", [project, name])
