"""Config rows with a member scope, as LXD keeps them for storage pools and networks:
`<object>_config (id, <object>_id, node_id, key, value)`, node_id NULL for the cluster-wide keys and
a member's nodes.id for that member's own (member-specific) keys. What a member sees of an object's
config is the cluster-wide rows with its own rows over them."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd


async def seen_by(tx: Tx, table: str, fk: str, ids: list[int], node_id: int) -> dict[int, dict]:
    """{owner: config} as member `node_id` sees it (cluster-wide keys and its own), keys sorted."""
    if not ids:
        return {}
    rows = await lxd.fetch_in(tx, f"SELECT {fk} AS owner, node_id, key, value FROM {table} "
                                  f"WHERE (node_id IS NULL OR node_id = ?) AND {fk} IN ({{marks}}) ORDER BY key",
                              ids, [node_id])
    out: dict[int, dict] = {i: {} for i in ids}
    for r in sorted(rows, key=lambda r: r["node_id"] is not None):   # the member's own rows last: they win
        out[r["owner"]][r["key"]] = r["value"]
    return {k: dict(sorted(v.items())) for k, v in out.items()}


async def of_scope(tx: Tx, table: str, fk: str, owner: int, node_id: int | None) -> dict[str, str]:
    """The rows of one scope only: the cluster-wide ones (node_id None) or one member's."""
    if node_id is None:
        rows = await tx.fetch(f"SELECT key, value FROM {table} WHERE {fk} = ? AND node_id IS NULL ORDER BY key",
                              [owner])
    else:
        rows = await tx.fetch(f"SELECT key, value FROM {table} WHERE {fk} = ? AND node_id = ? ORDER BY key",
                              [owner, node_id])
    return {r["key"]: r["value"] for r in rows}


async def members_rows(tx: Tx, table: str, fk: str, owner: int) -> dict[int, dict[str, str]]:
    """{node_id: that member's own rows} of one owner."""
    out: dict[int, dict[str, str]] = {}
    for r in await tx.fetch(f"SELECT node_id, key, value FROM {table} WHERE {fk} = ? AND node_id IS NOT NULL "
                            "ORDER BY key", [owner]):
        out.setdefault(r["node_id"], {})[r["key"]] = r["value"]
    return out


async def set_scope(tx: Tx, table: str, fk: str, owner: int, node_id: int | None, config: dict) -> None:
    """Make one scope's rows `config` (empty values are not stored, as LXD stores none), writing
    only the rows that change."""
    config = {k: v for k, v in config.items() if v not in (None, "")}
    scope = "node_id IS NULL" if node_id is None else "node_id = ?"
    params = [] if node_id is None else [node_id]
    old = {r["key"]: (r["id"], r["value"]) for r in
           await tx.fetch(f"SELECT id, key, value FROM {table} WHERE {fk} = ? AND {scope}", [owner] + params)}
    gone = [row_id for k, (row_id, _) in old.items() if k not in config]
    for i in range(0, len(gone), lxd.IN_CHUNK):
        part = gone[i:i + lxd.IN_CHUNK]
        await tx.execute(f"DELETE FROM {table} WHERE id IN ({','.join('?' * len(part))})", part)
    for k, v in config.items():
        if k not in old:
            await tx.execute(f"INSERT INTO {table} ({fk}, node_id, key, value) VALUES (?, ?, ?, ?)",
                             [owner, node_id, k, v])
        elif old[k][1] != v:
            await tx.execute(f"UPDATE {table} SET value = ? WHERE id = ?", [v, old[k][0]])


async def set_split(tx: Tx, table: str, fk: str, owner: int, node_id: int, config: dict,
                    member_keys: frozenset[str] | set[str]) -> None:
    """A member's whole view of the config: its member-specific keys in its own scope, the
    others cluster-wide (LXD's storagePoolConfigAdd / networkConfigAdd split)."""
    await set_scope(tx, table, fk, owner, None, {k: v for k, v in config.items() if k not in member_keys})
    await set_scope(tx, table, fk, owner, node_id, {k: v for k, v in config.items() if k in member_keys})


async def localise(tx: Tx, table: str, fk: str, owner: int, node_id: int, member_keys) -> int:
    """Member-specific keys a standalone server stored cluster-wide (before it kept them per member)
    moved to member `node_id`'s scope; how many moved."""
    rows = await tx.fetch(f"SELECT id, key FROM {table} WHERE {fk} = ? AND node_id IS NULL", [owner])
    mine = await of_scope(tx, table, fk, owner, node_id)
    moved = 0
    for r in rows:
        if r["key"] in member_keys:
            if r["key"] in mine:
                await tx.execute(f"DELETE FROM {table} WHERE id = ?", [r["id"]])
            else:
                await tx.execute(f"UPDATE {table} SET node_id = ? WHERE id = ?", [node_id, r["id"]])
            moved += 1
    return moved
