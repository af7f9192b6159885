"""The trust store in LXD's tables: certificates (type 1 client, 2 server, 3 metrics) and
certificates_projects (the projects of a restricted certificate)."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

_COLS = "id, fingerprint, type, name, certificate, restricted"


async def _rows(tx: Tx, rows: list[dict]) -> list[dict]:
    projects: dict[int, list[str]] = {}
    ids = [r["id"] for r in rows]
    if ids:
        for r in await lxd.fetch_in(tx, "SELECT cp.certificate_id AS cid, p.name AS name FROM certificates_projects cp "
                                    "JOIN projects p ON p.id = cp.project_id WHERE cp.certificate_id IN "
                                    "({marks}) ORDER BY cp.rowid", ids):
            projects.setdefault(r["cid"], []).append(r["name"])
    return [{"fingerprint": r["fingerprint"], "type": lxd.cert_type_name(r["type"]), "name": r["name"],
             "certificate": r["certificate"], "restricted": bool(r["restricted"]),
             "projects": projects.get(r["id"], [])} for r in rows]


async def _set_projects(tx: Tx, cert_id: int, projects: list[str]) -> None:
    await tx.execute("DELETE FROM certificates_projects WHERE certificate_id = ?", [cert_id])
    for p in dict.fromkeys(projects):
        await tx.execute(f"INSERT INTO certificates_projects (certificate_id, project_id) "
                         f"SELECT ?, id FROM projects WHERE name = ?", [cert_id, p])


async def get_all(tx: Tx) -> list[dict]:
    return await _rows(tx, await tx.fetch(f"SELECT {_COLS} FROM certificates ORDER BY name, fingerprint"))


async def get(tx: Tx, fingerprint: str) -> dict | None:
    r = await tx.fetchone(f"SELECT {_COLS} FROM certificates WHERE fingerprint = ?", [fingerprint])
    return (await _rows(tx, [r]))[0] if r else None


async def create(tx: Tx, cert: dict) -> None:
    cid, _ = await tx.execute("INSERT INTO certificates (fingerprint, type, name, certificate, restricted) "
                              "VALUES (?, ?, ?, ?, ?)",
                              [cert["fingerprint"], lxd.cert_type_code(cert["type"]), cert["name"],
                               cert["certificate"], int(cert["restricted"])])
    await _set_projects(tx, cid, cert["projects"])


async def update(tx: Tx, fingerprint: str, cert: dict) -> None:
    r = await tx.fetchone("SELECT id FROM certificates WHERE fingerprint = ?", [fingerprint])
    if r:
        await tx.execute("UPDATE certificates SET type = ?, name = ?, restricted = ? WHERE id = ?",
                         [lxd.cert_type_code(cert["type"]), cert["name"], int(cert["restricted"]), r["id"]])
        await _set_projects(tx, r["id"], cert["projects"])


async def delete(tx: Tx, fingerprint: str) -> None:
    await tx.execute("DELETE FROM certificates WHERE fingerprint = ?", [fingerprint])


async def rename_project(tx: Tx, old: str, new: str) -> None:
    """Nothing to do: certificates_projects refers to projects by id, so a rename follows."""
