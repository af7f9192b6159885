"""Cluster members (LXD's `nodes`): a standalone daemon is row 1, 'none' at '0.0.0.0'.

LXD 5.0's tables: nodes (id, name, description, address, schema, api_extensions, heartbeat, state,
arch, failure_domain_id), nodes_roles (node_id, role), nodes_failure_domains (id, name),
nodes_config (node_id, key, value), cluster_groups (id, name, description) and
nodes_cluster_groups (node_id, group_id). A member's `nodes.id` is also its raft id.
"""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

# LXD's ClusterMemberState* values of nodes.state.
CREATED, PENDING, EVACUATED = 0, 1, 2
# The roles LXD 5.0 stores in nodes_roles (db.ClusterRoles); the database-* roles are not stored,
# they are derived from the raft configuration.
ROLES = {1: "event-hub", 2: "ovn-chassis"}
ROLE_CODES = {v: k for k, v in ROLES.items()}
DEFAULT_FAILURE_DOMAIN = "default"   # a member whose failure_domain_id is NULL


async def update_local(tx: Tx, *, schema: int, api_extensions: int, arch: str, heartbeat: str) -> None:
    """Record this member's schema version, API extension count, architecture and heartbeat."""
    code = lxd.arch_code(arch)
    await tx.execute("UPDATE nodes SET schema = ?, api_extensions = ?, heartbeat = ?, "
                     "arch = CASE WHEN ? > 0 THEN ? ELSE arch END WHERE id = ?",
                     [schema, api_extensions, heartbeat, code, code, lxd.LOCAL_NODE_ID])


async def get_all(tx: Tx) -> list[dict]:
    rows = await tx.fetch("SELECT id, name, address, schema, api_extensions, arch FROM nodes ORDER BY id")
    return [dict(r, arch=lxd.arch_name(r["arch"])) for r in rows]


_MEMBER_SQL = ("SELECT n.id, n.name, n.description, n.address, n.schema, n.api_extensions, n.heartbeat, "
               "n.state, n.arch, COALESCE(d.name, 'default') AS failure_domain FROM nodes n "
               "LEFT JOIN nodes_failure_domains d ON d.id = n.failure_domain_id WHERE n.state != ?")


async def _members(tx: Tx, rows: list[dict]) -> list[dict]:
    ids = [r["id"] for r in rows]
    if not ids:
        return []
    roles: dict[int, list[str]] = {}
    for r in await lxd.fetch_in(tx, "SELECT node_id, role FROM nodes_roles WHERE node_id IN ({marks}) "
                                    "ORDER BY node_id, role", ids):
        roles.setdefault(r["node_id"], []).append(ROLES.get(r["role"], str(r["role"])))
    groups: dict[int, list[str]] = {}
    for r in await lxd.fetch_in(tx, "SELECT ng.node_id, g.name FROM nodes_cluster_groups ng "
                                    "JOIN cluster_groups g ON g.id = ng.group_id "
                                    "WHERE ng.node_id IN ({marks}) ORDER BY ng.node_id, g.id", ids):
        groups.setdefault(r["node_id"], []).append(r["name"])
    config = await lxd.config_of(tx, "nodes_config", "node_id", ids)
    return [dict(r, description=r["description"] or "", arch=lxd.arch_name(r["arch"]),
                 roles=roles.get(r["id"], []), groups=groups.get(r["id"], []),
                 config=config.get(r["id"], {})) for r in rows]


async def members(tx: Tx) -> list[dict]:
    """Every member but the pending ones (accepted, not yet joined), in id order, with their roles
    (the stored ones), failure domain, config and cluster groups."""
    return await _members(tx, await tx.fetch(_MEMBER_SQL + " ORDER BY n.id", [PENDING]))


async def member(tx: Tx, name: str) -> dict | None:
    rows = await _members(tx, await tx.fetch(_MEMBER_SQL + " AND n.name = ?", [PENDING, name]))
    return rows[0] if rows else None


async def max_version(tx: Tx) -> tuple[int, int]:
    """The highest schema and API extension count of any member (LXD's GetNodeMaxVersion)."""
    r = await tx.fetchone("SELECT MAX(schema) AS schema, MAX(api_extensions) AS api FROM nodes")
    return (r["schema"] or 0, r["api"] or 0) if r else (0, 0)


async def name_taken(tx: Tx, name: str) -> bool:
    """Any row has this name, pending members included."""
    return await tx.fetchone("SELECT id FROM nodes WHERE name = ?", [name]) is not None


async def group_ids(tx: Tx, names: list[str]) -> dict[str, int]:
    """The ids of those cluster groups that exist, by name."""
    if not names:
        return {}
    rows = await lxd.fetch_in(tx, "SELECT id, name FROM cluster_groups WHERE name IN ({marks})", list(names))
    return {r["name"]: r["id"] for r in rows}


async def update(tx: Tx, member_id: int, *, description: str, roles: list[int], failure_domain: str,
                 config: dict, groups: list[int]) -> None:
    """Replace a member's writable fields: description, stored role codes, failure domain (by name:
    'default' is no domain, another name is made when new), config and cluster group ids."""
    await lxd.set_config(tx, "nodes_config", "node_id", member_id, config)
    await tx.execute("UPDATE nodes SET description = ? WHERE id = ?", [description, member_id])
    await tx.execute("DELETE FROM nodes_roles WHERE node_id = ?", [member_id])
    for code in dict.fromkeys(roles):
        await tx.execute("INSERT INTO nodes_roles (node_id, role) VALUES (?, ?)", [member_id, code])
    domain_id = None
    if failure_domain != DEFAULT_FAILURE_DOMAIN:
        r = await tx.fetchone("SELECT id FROM nodes_failure_domains WHERE name = ?", [failure_domain])
        domain_id = r["id"] if r else (await tx.execute(
            "INSERT INTO nodes_failure_domains (name) VALUES (?)", [failure_domain]))[0]
    await tx.execute("UPDATE nodes SET failure_domain_id = ? WHERE id = ?", [domain_id, member_id])
    wanted = list(dict.fromkeys(groups))
    old = [r["group_id"] for r in await tx.fetch("SELECT group_id FROM nodes_cluster_groups WHERE node_id = ?",
                                                  [member_id])]
    for gid in old:
        if gid not in wanted:
            await tx.execute("DELETE FROM nodes_cluster_groups WHERE node_id = ? AND group_id = ?", [member_id, gid])
    for gid in wanted:
        if gid not in old:
            await tx.execute("INSERT INTO nodes_cluster_groups (node_id, group_id) VALUES (?, ?)", [member_id, gid])


async def rename(tx: Tx, old: str, new: str) -> bool:
    """Whether a member named `old` was renamed."""
    _, n = await tx.execute("UPDATE nodes SET name = ? WHERE name = ?", [new, old])
    return n == 1


async def delete(tx: Tx, name: str) -> bool:
    """Remove a member's row (its roles, config and group memberships go with it); whether one was."""
    _, n = await tx.execute("DELETE FROM nodes WHERE name = ?", [name])
    return n == 1


async def instance_counts(tx: Tx) -> dict[int, int]:
    """How many instances (snapshots aside) each member holds, by member id."""
    rows = await tx.fetch("SELECT node_id, COUNT(*) AS n FROM instances GROUP BY node_id")
    return {r["node_id"]: r["n"] for r in rows}
