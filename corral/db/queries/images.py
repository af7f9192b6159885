"""Images and image aliases in LXD's tables: images (project_id, creation_date, upload_date, ...),
images_properties, images_profiles, images_nodes, images_aliases (image_id). Rows are per project;
aliases point at an image in their own project."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

_SELECT = ("SELECT i.id AS id, i.fingerprint AS fingerprint, i.filename AS filename, i.size AS size, "
           "i.public AS public, i.auto_update AS auto_update, i.cached AS cached, i.architecture AS architecture, "
           "i.type AS type, i.creation_date AS created_at, i.upload_date AS uploaded_at, "
           "i.expiry_date AS expires_at, i.last_use_date AS last_used_at FROM images i "
           "JOIN projects p ON p.id = i.project_id WHERE p.name = ? ")
_ZERO = "0001-01-01T00:00:00Z"


async def _images(tx: Tx, rows: list[dict]) -> list[dict]:
    ids = [r["id"] for r in rows]
    props: dict[int, dict] = {}
    profiles: dict[int, list[str]] = {}
    if ids:
        for r in await lxd.fetch_in(tx, "SELECT image_id, key, value FROM images_properties WHERE image_id IN "
                                    "({marks}) ORDER BY key", ids):
            props.setdefault(r["image_id"], {})[r["key"]] = r["value"]
        for r in await lxd.fetch_in(tx, "SELECT ip.image_id AS image_id, pr.name AS name FROM images_profiles ip "
                                    "JOIN profiles pr ON pr.id = ip.profile_id JOIN images im ON im.id = ip.image_id "
                                    "WHERE pr.project_id = im.project_id AND ip.image_id IN ({marks}) "
                                    "ORDER BY ip.rowid", ids):
            profiles.setdefault(r["image_id"], []).append(r["name"])
    return [{"fingerprint": r["fingerprint"], "filename": r["filename"], "size": r["size"],
             "public": bool(r["public"]), "auto_update": bool(r["auto_update"]), "cached": bool(r["cached"]),
             "architecture": lxd.arch_name(r["architecture"]),
             "type": "virtual-machine" if r["type"] == 1 else "container",
             "created_at": r["created_at"] or _ZERO, "uploaded_at": r["uploaded_at"] or _ZERO,
             "expires_at": r["expires_at"] or _ZERO, "last_used_at": r["last_used_at"] or _ZERO,
             "properties": props.get(r["id"], {}), "profiles": profiles.get(r["id"], [])} for r in rows]


async def _id(tx: Tx, project: str, fingerprint: str) -> int | None:
    r = await tx.fetchone(_SELECT + "AND i.fingerprint = ?", [project, fingerprint])
    return r["id"] if r else None


async def _set_profiles(tx: Tx, image_id: int, project: str, names: list[str]) -> None:
    await tx.execute("DELETE FROM images_profiles WHERE image_id = ?", [image_id])
    for pname in dict.fromkeys(names):
        await tx.execute(f"INSERT INTO images_profiles (image_id, profile_id) SELECT ?, id FROM profiles "
                         f"WHERE project_id = {lxd.PROJECT_ID} AND name = ?", [image_id, project, pname])


async def _set_properties(tx: Tx, image_id: int, props: dict) -> None:
    await tx.execute("DELETE FROM images_properties WHERE image_id = ?", [image_id])
    for k, v in props.items():
        await tx.execute("INSERT INTO images_properties (image_id, type, key, value) VALUES (?, 0, ?, ?)",
                         [image_id, k, v])


async def fingerprints(tx: Tx, project: str) -> list[str]:
    return [r["fingerprint"] for r in await tx.fetch(_SELECT + "ORDER BY i.id", [project])]


async def all_fingerprints(tx: Tx) -> set[str]:
    """Every image fingerprint, in any project."""
    return {r["fingerprint"] for r in await tx.fetch("SELECT fingerprint FROM images")}


async def get_all(tx: Tx, project: str) -> list[dict]:
    return await _images(tx, await tx.fetch(_SELECT + "ORDER BY i.id", [project]))


async def get(tx: Tx, project: str, fingerprint: str) -> dict | None:
    r = await tx.fetchone(_SELECT + "AND i.fingerprint = ?", [project, fingerprint])
    return (await _images(tx, [r]))[0] if r else None


async def by_prefix(tx: Tx, project: str, prefix: str) -> list[str]:
    """Full fingerprints in `project` starting with `prefix` (callers pass hex only)."""
    rows = await tx.fetch(_SELECT + "AND substr(i.fingerprint, 1, ?) = ? ORDER BY i.id", [project, len(prefix), prefix])
    return [r["fingerprint"] for r in rows]


async def projects_with(tx: Tx, fingerprint: str) -> list[str]:
    rows = await tx.fetch("SELECT p.name AS project FROM images i JOIN projects p ON p.id = i.project_id "
                          "WHERE i.fingerprint = ? ORDER BY p.name", [fingerprint])
    return [r["project"] for r in rows]


async def create(tx: Tx, project: str, img: dict, *, local: bool = True) -> None:
    """A new image record; `local`: this member holds its files (an images_nodes row)."""
    iid, _ = await tx.execute(
        f"INSERT INTO images (fingerprint, filename, size, public, architecture, creation_date, expiry_date, "
        f"upload_date, cached, last_use_date, auto_update, project_id, type) "
        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {lxd.PROJECT_ID}, ?)",
        [img["fingerprint"], img.get("filename", ""), img.get("size", 0), int(bool(img.get("public"))),
         lxd.arch_code(img["architecture"]), img["created_at"], img["expires_at"], img["uploaded_at"],
         int(bool(img.get("cached"))), img["last_used_at"], int(bool(img.get("auto_update"))), project,
         1 if img.get("type") == "virtual-machine" else 0])
    if local:
        await tx.execute(f"INSERT INTO images_nodes (image_id, node_id) VALUES (?, {lxd.LOCAL_NODE_ID})", [iid])
    # The members holding the files of this fingerprint hold them for the new record too.
    await tx.execute("INSERT OR IGNORE INTO images_nodes (image_id, node_id) SELECT DISTINCT ?, n.node_id "
                     "FROM images_nodes n JOIN images i ON i.id = n.image_id WHERE i.fingerprint = ? AND i.id != ?",
                     [iid, img["fingerprint"], iid])
    await _set_properties(tx, iid, img.get("properties") or {})
    await _set_profiles(tx, iid, project, img.get("profiles") or [])


# ---- which members hold an image's files (images_nodes) ---------------------------------------------
# The files of a fingerprint are shared by every project's record on a member, so a member holds a
# fingerprint when it has a row for any record with it, and rows are added and dropped for them all.

async def holders(tx: Tx, fingerprint: str) -> list[int]:
    """The nodes.id of every member holding the files of `fingerprint`."""
    rows = await tx.fetch("SELECT DISTINCT n.node_id AS node_id FROM images_nodes n JOIN images i ON i.id = n.image_id "
                          "WHERE i.fingerprint = ? ORDER BY n.node_id", [fingerprint])
    return [r["node_id"] for r in rows]


async def add_holder(tx: Tx, fingerprint: str) -> int:
    """This member holds the files of `fingerprint` (rows for each record); the number of records."""
    await tx.execute(f"INSERT OR IGNORE INTO images_nodes (image_id, node_id) SELECT id, {lxd.LOCAL_NODE_ID} "
                     "FROM images WHERE fingerprint = ?", [fingerprint])
    r = await tx.fetchone("SELECT COUNT(*) AS n FROM images WHERE fingerprint = ?", [fingerprint])
    return r["n"] if r else 0


async def drop_holder(tx: Tx, fingerprint: str) -> None:
    """This member no longer holds the files of `fingerprint`."""
    await tx.execute(f"DELETE FROM images_nodes WHERE node_id = {lxd.LOCAL_NODE_ID} AND image_id IN "
                     "(SELECT id FROM images WHERE fingerprint = ?)", [fingerprint])


async def held_by(tx: Tx, node_id: int) -> set[str]:
    """The fingerprints whose files the member `node_id` holds."""
    rows = await tx.fetch("SELECT DISTINCT i.fingerprint AS fingerprint FROM images i JOIN images_nodes n "
                          "ON n.image_id = i.id WHERE n.node_id = ?", [node_id])
    return {r["fingerprint"] for r in rows}


async def projects_by_fingerprint(tx: Tx) -> dict[str, list[str]]:
    """Every fingerprint with the projects that have a record of it."""
    out: dict[str, list[str]] = {}
    for r in await tx.fetch("SELECT i.fingerprint AS fingerprint, p.name AS project FROM images i "
                            "JOIN projects p ON p.id = i.project_id ORDER BY i.id"):
        out.setdefault(r["fingerprint"], []).append(r["project"])
    return out


async def update(tx: Tx, project: str, fingerprint: str, img: dict) -> None:
    iid = await _id(tx, project, fingerprint)
    if iid is None:
        return
    await tx.execute("UPDATE images SET public = ?, auto_update = ?, expiry_date = ? WHERE id = ?",
                     [int(bool(img["public"])), int(bool(img["auto_update"])), img["expires_at"], iid])
    await _set_properties(tx, iid, img.get("properties") or {})
    await _set_profiles(tx, iid, project, img.get("profiles") or [])


async def touch(tx: Tx, project: str, fingerprint: str, when: str) -> None:
    await tx.execute(f"UPDATE images SET last_use_date = ? WHERE project_id = {lxd.PROJECT_ID} AND fingerprint = ?",
                     [when, project, fingerprint])


async def delete(tx: Tx, project: str, fingerprint: str) -> None:
    """The image row; its aliases, properties and profile links go with it (ON DELETE CASCADE)."""
    await tx.execute(f"DELETE FROM images WHERE project_id = {lxd.PROJECT_ID} AND fingerprint = ?",
                     [project, fingerprint])


# ---- aliases --------------------------------------------------------------------------------------

_ALIAS_SQL = ("SELECT a.name AS name, i.fingerprint AS target, a.description AS description, "
              "CASE i.type WHEN 1 THEN 'virtual-machine' ELSE 'container' END AS type FROM images_aliases a "
              "JOIN images i ON i.id = a.image_id JOIN projects p ON p.id = a.project_id ")
_IMAGE_ID = "(SELECT id FROM images WHERE project_id = (SELECT id FROM projects WHERE name = ?) AND fingerprint = ?)"


def _alias(r: dict) -> dict:
    return {"description": r["description"] or "", "target": r["target"], "name": r["name"], "type": r["type"]}


async def alias_names(tx: Tx, project: str) -> list[str]:
    rows = await tx.fetch(_ALIAS_SQL + "WHERE p.name = ? ORDER BY a.name", [project])
    return [r["name"] for r in rows]


async def aliases(tx: Tx, project: str) -> list[dict]:
    rows = await tx.fetch(_ALIAS_SQL + "WHERE p.name = ? ORDER BY a.name", [project])
    return [_alias(r) for r in rows]


async def alias(tx: Tx, project: str, name: str) -> dict | None:
    r = await tx.fetchone(_ALIAS_SQL + "WHERE p.name = ? AND a.name = ?", [project, name])
    return _alias(r) if r else None


async def aliases_of(tx: Tx, project: str, fingerprint: str) -> list[dict]:
    rows = await tx.fetch(_ALIAS_SQL + "WHERE p.name = ? AND i.fingerprint = ? ORDER BY a.name", [project, fingerprint])
    return [{"name": r["name"], "description": r["description"] or ""} for r in rows]


async def alias_create(tx: Tx, project: str, name: str, fingerprint: str, description: str) -> None:
    await tx.execute(f"INSERT INTO images_aliases (name, image_id, description, project_id) "
                     f"VALUES (?, {_IMAGE_ID}, ?, {lxd.PROJECT_ID})", [name, project, fingerprint, description, project])


async def alias_update(tx: Tx, project: str, name: str, fingerprint: str, description: str) -> None:
    await tx.execute(f"UPDATE images_aliases SET image_id = {_IMAGE_ID}, description = ? "
                     f"WHERE project_id = {lxd.PROJECT_ID} AND name = ?", [project, fingerprint, description, project, name])


async def alias_rename(tx: Tx, project: str, old: str, new: str) -> None:
    await tx.execute(f"UPDATE images_aliases SET name = ? WHERE project_id = {lxd.PROJECT_ID} AND name = ?",
                     [new, project, old])


async def alias_delete(tx: Tx, project: str, name: str) -> None:
    await tx.execute(f"DELETE FROM images_aliases WHERE project_id = {lxd.PROJECT_ID} AND name = ?", [project, name])
