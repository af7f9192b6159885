"""Cluster membership as the cluster layer needs it: LXD's `nodes` rows (a member's `nodes.id` is also
its raft id), heartbeats, and what a joining member must not hold."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

PENDING = 1   # LXD's ClusterMemberStatePending: accepted, not yet joined


async def members(tx: Tx) -> list[dict]:
    rows = await tx.fetch("SELECT n.id, n.name, n.address, n.heartbeat, n.schema, n.api_extensions, n.state, "
                          "n.arch, COALESCE(d.name, 'default') AS failure_domain FROM nodes n "
                          "LEFT JOIN nodes_failure_domains d ON d.id = n.failure_domain_id ORDER BY n.id")
    return [dict(r, arch=lxd.arch_name(r["arch"])) for r in rows]


async def by_name(tx: Tx, name: str) -> dict | None:
    return next((m for m in await members(tx) if m["name"] == name), None)


async def by_address(tx: Tx, address: str) -> dict | None:
    return next((m for m in await members(tx) if m["address"] == address), None)


async def bootstrap(tx: Tx, member_id: int, name: str, address: str) -> None:
    """The standalone member becomes the cluster's first: its name and cluster address."""
    await tx.execute("UPDATE nodes SET name = ?, address = ? WHERE id = ?", [name, address, member_id])


async def add(tx: Tx, *, name: str, address: str, schema: int, api_extensions: int, arch: str,
              heartbeat: str) -> int:
    """A joining member's row (pending until it has joined), in the default cluster group."""
    member_id, _ = await tx.execute(
        "INSERT INTO nodes (name, description, address, schema, api_extensions, heartbeat, state, arch) "
        "VALUES (?, '', ?, ?, ?, ?, ?, ?)",
        [name, address, schema, api_extensions, heartbeat, PENDING, lxd.arch_code(arch) or 1])
    await tx.execute("INSERT OR IGNORE INTO nodes_cluster_groups (node_id, group_id) "
                     "SELECT ?, id FROM cluster_groups WHERE name = 'default'", [member_id])
    return member_id


async def joined(tx: Tx, member_id: int) -> None:
    await tx.execute("UPDATE nodes SET state = 0 WHERE id = ? AND state = ?", [member_id, PENDING])


async def delete(tx: Tx, member_id: int) -> None:
    await tx.execute("DELETE FROM nodes WHERE id = ?", [member_id])


async def set_heartbeat(tx: Tx, member_ids: list[int], when: str) -> None:
    for start in range(0, len(member_ids), 200):
        ids = member_ids[start:start + 200]
        await tx.execute(f"UPDATE nodes SET heartbeat = ? WHERE id IN ({', '.join('?' * len(ids))})",
                         [when, *ids])


async def rename(tx: Tx, member_id: int, name: str) -> None:
    await tx.execute("UPDATE nodes SET name = ? WHERE id = ?", [name, member_id])


async def local_holdings(tx: Tx) -> dict[str, int]:
    """What a standalone server holds that a cluster could not take over when it joins."""
    inst = await tx.fetchone("SELECT COUNT(*) AS n FROM instances")
    vols = await tx.fetchone("SELECT COUNT(*) AS n FROM storage_volumes WHERE type = 2")
    return {"instances": inst["n"], "custom volumes": vols["n"]}
