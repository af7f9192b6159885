"""Images and image aliases (tables from migration 2). Rows are per project; aliases point at a
fingerprint in their own project."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import dumps, loads

_COLS = ("fingerprint, filename, size, public, auto_update, cached, architecture, type, created_at, "
         "uploaded_at, expires_at, last_used_at, properties, profiles")


def _image(r: dict) -> dict:
    profiles = loads(r["profiles"])
    return {"fingerprint": r["fingerprint"], "filename": r["filename"], "size": r["size"],
            "public": bool(r["public"]), "auto_update": bool(r["auto_update"]), "cached": bool(r["cached"]),
            "architecture": r["architecture"], "type": r["type"], "created_at": r["created_at"],
            "uploaded_at": r["uploaded_at"], "expires_at": r["expires_at"], "last_used_at": r["last_used_at"],
            "properties": loads(r["properties"]), "profiles": profiles if isinstance(profiles, list) else []}


async def fingerprints(tx: Tx, project: str) -> list[str]:
    rows = await tx.fetch("SELECT fingerprint FROM images WHERE project = ? ORDER BY id", [project])
    return [r["fingerprint"] for r in rows]


async def all_fingerprints(tx: Tx) -> set[str]:
    """Every image fingerprint, in any project."""
    return {r["fingerprint"] for r in await tx.fetch("SELECT fingerprint FROM images")}


async def get_all(tx: Tx, project: str) -> list[dict]:
    rows = await tx.fetch(f"SELECT {_COLS} FROM images WHERE project = ? ORDER BY id", [project])
    return [_image(r) for r in rows]


async def get(tx: Tx, project: str, fingerprint: str) -> dict | None:
    r = await tx.fetchone(f"SELECT {_COLS} FROM images WHERE project = ? AND fingerprint = ?",
                          [project, fingerprint])
    return _image(r) if r else None


async def by_prefix(tx: Tx, project: str, prefix: str) -> list[str]:
    """Full fingerprints in `project` starting with `prefix` (callers pass hex only)."""
    rows = await tx.fetch("SELECT fingerprint FROM images WHERE project = ? AND substr(fingerprint, 1, ?) = ? "
                          "ORDER BY id", [project, len(prefix), prefix])
    return [r["fingerprint"] for r in rows]


async def projects_with(tx: Tx, fingerprint: str) -> list[str]:
    rows = await tx.fetch("SELECT project FROM images WHERE fingerprint = ? ORDER BY project", [fingerprint])
    return [r["project"] for r in rows]


async def create(tx: Tx, project: str, img: dict) -> None:
    await tx.execute(
        "INSERT INTO images (project, fingerprint, filename, size, public, auto_update, cached, architecture, "
        "type, created_at, uploaded_at, expires_at, last_used_at, properties, profiles) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [project, img["fingerprint"], img.get("filename", ""), img.get("size", 0), int(bool(img.get("public"))),
         int(bool(img.get("auto_update"))), int(bool(img.get("cached"))), img["architecture"],
         img.get("type", "container"), img["created_at"], img["uploaded_at"], img["expires_at"],
         img["last_used_at"], dumps(img.get("properties") or {}), dumps(img.get("profiles") or [])])


async def update(tx: Tx, project: str, fingerprint: str, img: dict) -> None:
    await tx.execute(
        "UPDATE images SET public = ?, auto_update = ?, expires_at = ?, properties = ?, profiles = ? "
        "WHERE project = ? AND fingerprint = ?",
        [int(bool(img["public"])), int(bool(img["auto_update"])), img["expires_at"],
         dumps(img.get("properties") or {}), dumps(img.get("profiles") or []), project, fingerprint])


async def touch(tx: Tx, project: str, fingerprint: str, when: str) -> None:
    await tx.execute("UPDATE images SET last_used_at = ? WHERE project = ? AND fingerprint = ?",
                     [when, project, fingerprint])


async def delete(tx: Tx, project: str, fingerprint: str) -> None:
    await tx.execute("DELETE FROM images_aliases WHERE project = ? AND fingerprint = ?", [project, fingerprint])
    await tx.execute("DELETE FROM images WHERE project = ? AND fingerprint = ?", [project, fingerprint])


# ---- aliases --------------------------------------------------------------------------------------

_ALIAS_SQL = ("SELECT a.name AS name, a.fingerprint AS target, a.description AS description, "
              "COALESCE(i.type, 'container') AS type FROM images_aliases a "
              "LEFT JOIN images i ON i.project = a.project AND i.fingerprint = a.fingerprint ")


def _alias(r: dict) -> dict:
    return {"description": r["description"], "target": r["target"], "name": r["name"], "type": r["type"]}


async def alias_names(tx: Tx, project: str) -> list[str]:
    rows = await tx.fetch("SELECT name FROM images_aliases WHERE project = ? ORDER BY name", [project])
    return [r["name"] for r in rows]


async def aliases(tx: Tx, project: str) -> list[dict]:
    rows = await tx.fetch(_ALIAS_SQL + "WHERE a.project = ? ORDER BY a.name", [project])
    return [_alias(r) for r in rows]


async def alias(tx: Tx, project: str, name: str) -> dict | None:
    r = await tx.fetchone(_ALIAS_SQL + "WHERE a.project = ? AND a.name = ?", [project, name])
    return _alias(r) if r else None


async def aliases_of(tx: Tx, project: str, fingerprint: str) -> list[dict]:
    rows = await tx.fetch("SELECT name, description FROM images_aliases WHERE project = ? AND fingerprint = ? "
                          "ORDER BY name", [project, fingerprint])
    return [{"name": r["name"], "description": r["description"]} for r in rows]


async def alias_create(tx: Tx, project: str, name: str, fingerprint: str, description: str) -> None:
    await tx.execute("INSERT INTO images_aliases (project, name, fingerprint, description) VALUES (?, ?, ?, ?)",
                     [project, name, fingerprint, description])


async def alias_update(tx: Tx, project: str, name: str, fingerprint: str, description: str) -> None:
    await tx.execute("UPDATE images_aliases SET fingerprint = ?, description = ? WHERE project = ? AND name = ?",
                     [fingerprint, description, project, name])


async def alias_rename(tx: Tx, project: str, old: str, new: str) -> None:
    await tx.execute("UPDATE images_aliases SET name = ? WHERE project = ? AND name = ?", [new, project, old])


async def alias_delete(tx: Tx, project: str, name: str) -> None:
    await tx.execute("DELETE FROM images_aliases WHERE project = ? AND name = ?", [project, name])
