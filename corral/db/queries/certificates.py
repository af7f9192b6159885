"""The trust store: client certificates allowed on the HTTPS API."""
from __future__ import annotations

import json

from corral.db import Tx

_COLS = "fingerprint, type, name, certificate, restricted, projects"


def _row(r: dict) -> dict:
    return {"fingerprint": r["fingerprint"], "type": r["type"], "name": r["name"],
            "certificate": r["certificate"], "restricted": bool(r["restricted"]),
            "projects": json.loads(r["projects"] or "[]")}


async def get_all(tx: Tx) -> list[dict]:
    return [_row(r) for r in await tx.fetch(f"SELECT {_COLS} FROM certificates ORDER BY name, fingerprint")]


async def get(tx: Tx, fingerprint: str) -> dict | None:
    r = await tx.fetchone(f"SELECT {_COLS} FROM certificates WHERE fingerprint = ?", [fingerprint])
    return _row(r) if r else None


async def create(tx: Tx, cert: dict) -> None:
    await tx.execute(f"INSERT INTO certificates ({_COLS}) VALUES (?, ?, ?, ?, ?, ?)",
                     [cert["fingerprint"], cert["type"], cert["name"], cert["certificate"],
                      int(cert["restricted"]), json.dumps(cert["projects"])])


async def update(tx: Tx, fingerprint: str, cert: dict) -> None:
    await tx.execute("UPDATE certificates SET type = ?, name = ?, restricted = ?, projects = ? WHERE fingerprint = ?",
                     [cert["type"], cert["name"], int(cert["restricted"]), json.dumps(cert["projects"]),
                      fingerprint])


async def delete(tx: Tx, fingerprint: str) -> None:
    await tx.execute("DELETE FROM certificates WHERE fingerprint = ?", [fingerprint])


async def rename_project(tx: Tx, old: str, new: str) -> None:
    for r in await tx.fetch("SELECT fingerprint, projects FROM certificates"):
        projects = json.loads(r["projects"] or "[]")
        if old in projects:
            projects = [new if p == old else p for p in projects]
            await tx.execute("UPDATE certificates SET projects = ? WHERE fingerprint = ?",
                             [json.dumps(projects), r["fingerprint"]])
