"""Warnings, LXD-style: one row per (member, project, entity, type), counted on repeat. LXD's
`warnings` table holds the row (status 1 new, 2 acknowledged, 4 resolved); Corral's warning types
are its own names, not LXD's type codes (type_code 0, "undefined"), so the name, severity and entity
URL are in corral_warnings."""
from __future__ import annotations

import uuid as uuidlib

from corral.db import Tx
from corral.db.queries import lxd

_SELECT = ("SELECT w.uuid AS uuid, COALESCE(n.name, '') AS node, COALESCE(p.name, '') AS project, "
           "COALESCE(c.entity_url, '') AS entity_url, COALESCE(c.type, '') AS type, w.last_message AS last_message, "
           "COALESCE(c.severity, 'low') AS severity, w.status AS status, w.count AS count, "
           "w.first_seen_date AS first_seen_at, w.last_seen_date AS last_seen_at FROM warnings w "
           "LEFT JOIN corral_warnings c ON c.warning_id = w.id LEFT JOIN nodes n ON n.id = w.node_id "
           "LEFT JOIN projects p ON p.id = w.project_id ")


def _row(r: dict) -> dict:
    return dict(r, status=lxd.warning_status_name(r["status"]))


async def get_all(tx: Tx) -> list[dict]:
    return [_row(r) for r in await tx.fetch(_SELECT + "ORDER BY w.first_seen_date, w.id")]


async def get(tx: Tx, uuid: str) -> dict | None:
    r = await tx.fetchone(_SELECT + "WHERE w.uuid = ?", [uuid])
    return _row(r) if r else None


async def upsert(tx: Tx, *, project: str, entity_url: str, type: str, message: str,
                 severity: str, now: str) -> None:
    """This member's warning (warnings.node_id = this member: each member raises its own)."""
    row = await tx.fetchone(
        "SELECT w.id AS id FROM warnings w JOIN corral_warnings c ON c.warning_id = w.id "
        "LEFT JOIN projects p ON p.id = w.project_id "
        "WHERE w.node_id = ? AND COALESCE(p.name, '') = ? AND c.entity_url = ? AND c.type = ?",
        [lxd.LOCAL_NODE_ID, project, entity_url, type])
    if row:
        await tx.execute("UPDATE warnings SET count = count + 1, last_message = ?, last_seen_date = ?, "
                         "updated_date = ?, status = CASE WHEN status = 4 THEN 1 ELSE status END WHERE id = ?",
                         [message, now, now, row["id"]])
        return
    wid, _ = await tx.execute(
        "INSERT INTO warnings (node_id, project_id, entity_type_code, entity_id, uuid, type_code, status, "
        "first_seen_date, last_seen_date, updated_date, last_message, count) VALUES "
        "(?, (SELECT id FROM projects WHERE name = ?), NULL, NULL, ?, 0, 1, "
        "?, ?, ?, ?, 1)", [lxd.LOCAL_NODE_ID, project, str(uuidlib.uuid4()), now, now, now, message])
    await tx.execute("INSERT INTO corral_warnings (warning_id, type, severity, entity_url) VALUES (?, ?, ?, ?)",
                     [wid, type, severity, entity_url])


async def set_status(tx: Tx, uuid: str, status: str) -> None:
    await tx.execute("UPDATE warnings SET status = ? WHERE uuid = ?", [lxd.warning_status_code(status), uuid])


async def delete(tx: Tx, uuid: str) -> None:
    await tx.execute("DELETE FROM warnings WHERE uuid = ?", [uuid])
