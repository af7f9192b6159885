"""Warnings, LXD-style: one row per (member, project, entity, type), counted on repeat."""
from __future__ import annotations

import uuid as uuidlib

from corral.db import Tx

_COLS = ("uuid, node, project, entity_url, type, last_message, severity, status, count, "
         "first_seen_at, last_seen_at")


async def get_all(tx: Tx) -> list[dict]:
    return await tx.fetch(f"SELECT {_COLS} FROM warnings ORDER BY first_seen_at")


async def get(tx: Tx, uuid: str) -> dict | None:
    return await tx.fetchone(f"SELECT {_COLS} FROM warnings WHERE uuid = ?", [uuid])


async def upsert(tx: Tx, *, node: str, project: str, entity_url: str, type: str, message: str,
                 severity: str, now: str) -> None:
    row = await tx.fetchone("SELECT uuid FROM warnings WHERE node = ? AND project = ? AND entity_url = ? AND type = ?",
                            [node, project, entity_url, type])
    if row:
        await tx.execute("UPDATE warnings SET count = count + 1, last_message = ?, last_seen_at = ?, "
                         "status = CASE WHEN status = 'resolved' THEN 'new' ELSE status END WHERE uuid = ?",
                         [message, now, row["uuid"]])
    else:
        await tx.execute(f"INSERT INTO warnings ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, 'new', 1, ?, ?)",
                         [str(uuidlib.uuid4()), node, project, entity_url, type, message, severity, now, now])


async def set_status(tx: Tx, uuid: str, status: str) -> None:
    await tx.execute("UPDATE warnings SET status = ? WHERE uuid = ?", [status, uuid])


async def delete(tx: Tx, uuid: str) -> None:
    await tx.execute("DELETE FROM warnings WHERE uuid = ?", [uuid])
