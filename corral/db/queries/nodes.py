"""Cluster members (LXD's `nodes`): a standalone daemon is row 1, 'none' at '0.0.0.0'."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd


async def update_local(tx: Tx, *, schema: int, api_extensions: int, arch: str, heartbeat: str) -> None:
    """Record this member's schema version, API extension count, architecture and heartbeat."""
    code = lxd.arch_code(arch)
    await tx.execute("UPDATE nodes SET schema = ?, api_extensions = ?, heartbeat = ?, "
                     "arch = CASE WHEN ? > 0 THEN ? ELSE arch END WHERE id = ?",
                     [schema, api_extensions, heartbeat, code, code, lxd.LOCAL_NODE_ID])


async def get_all(tx: Tx) -> list[dict]:
    rows = await tx.fetch("SELECT id, name, address, schema, api_extensions, arch FROM nodes ORDER BY id")
    return [dict(r, arch=lxd.arch_name(r["arch"])) for r in rows]
