"""Cluster groups (LXD's `cluster_groups` and `nodes_cluster_groups`): named sets of members.

The `default` group (id 1, made with the schema) holds every member unless it was taken out of it;
a member is in at least one group (corral/cluster/groups.py keeps that). Pending members (accepted,
not yet joined) are left out of the member lists, as the members listing leaves them out.
"""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd
from corral.db.queries.nodes import PENDING

DEFAULT = "default"


async def _members_of(tx: Tx, group_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {gid: [] for gid in group_ids}
    if not group_ids:
        return out
    rows = await lxd.fetch_in(tx, "SELECT ng.group_id, n.name FROM nodes_cluster_groups ng "
                                  "JOIN nodes n ON n.id = ng.node_id "
                                  f"WHERE n.state != {PENDING} AND ng.group_id IN ({{marks}}) "
                                  "ORDER BY n.id", group_ids)
    for r in rows:
        out[r["group_id"]].append(r["name"])
    return out


async def get_all(tx: Tx) -> list[dict]:
    """Every group by name: {id, name, description, members (names, in member id order)}."""
    rows = await tx.fetch("SELECT id, name, description FROM cluster_groups ORDER BY name")
    members = await _members_of(tx, [r["id"] for r in rows])
    return [dict(r, description=r["description"] or "", members=members[r["id"]]) for r in rows]


async def names(tx: Tx) -> list[str]:
    return [r["name"] for r in await tx.fetch("SELECT name FROM cluster_groups ORDER BY name")]


async def get(tx: Tx, name: str) -> dict | None:
    r = await tx.fetchone("SELECT id, name, description FROM cluster_groups WHERE name = ?", [name])
    if r is None:
        return None
    return dict(r, description=r["description"] or "", members=(await _members_of(tx, [r["id"]]))[r["id"]])


async def member_ids(tx: Tx, names: list[str]) -> dict[str, int]:
    """The ids of the (joined) members among `names`, by name."""
    if not names:
        return {}
    rows = await lxd.fetch_in(tx, f"SELECT id, name FROM nodes WHERE state != {PENDING} AND name IN ({{marks}})",
                              list(names))
    return {r["name"]: r["id"] for r in rows}


async def group_counts(tx: Tx, member_ids: list[int]) -> dict[int, int]:
    """How many groups each of these members is in, by member id."""
    if not member_ids:
        return {}
    rows = await lxd.fetch_in(tx, "SELECT node_id, COUNT(*) AS n FROM nodes_cluster_groups "
                                  "WHERE node_id IN ({marks}) GROUP BY node_id", list(member_ids))
    out = {mid: 0 for mid in member_ids}
    out.update({r["node_id"]: r["n"] for r in rows})
    return out


async def create(tx: Tx, name: str, description: str, member_ids: list[int]) -> int:
    gid, _ = await tx.execute("INSERT INTO cluster_groups (name, description) VALUES (?, ?)", [name, description])
    await add_members(tx, gid, member_ids)
    return gid


async def set_description(tx: Tx, group_id: int, description: str) -> None:
    await tx.execute("UPDATE cluster_groups SET description = ? WHERE id = ?", [description, group_id])


async def add_members(tx: Tx, group_id: int, member_ids: list[int]) -> None:
    for mid in dict.fromkeys(member_ids):
        await tx.execute("INSERT OR IGNORE INTO nodes_cluster_groups (node_id, group_id) VALUES (?, ?)",
                         [mid, group_id])


async def remove_members(tx: Tx, group_id: int, member_ids: list[int]) -> None:
    for mid in dict.fromkeys(member_ids):
        await tx.execute("DELETE FROM nodes_cluster_groups WHERE node_id = ? AND group_id = ?", [mid, group_id])


async def rename(tx: Tx, old: str, new: str) -> bool:
    _, n = await tx.execute("UPDATE cluster_groups SET name = ? WHERE name = ?", [new, old])
    return n == 1


async def delete(tx: Tx, group_id: int) -> None:
    await tx.execute("DELETE FROM nodes_cluster_groups WHERE group_id = ?", [group_id])
    await tx.execute("DELETE FROM cluster_groups WHERE id = ?", [group_id])
