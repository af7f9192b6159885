"""Image sources (LXD's images_source) and the queries of the image cache: cached images, their last
use, auto-update candidates. Kept apart from queries/images.py so the remote-image code has its SQL
in one place. Images are addressed by (project, fingerprint) as in queries/images.py."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd

# LXD's protocol numbers in images_source.
PROTOCOLS = {"lxd": 0, "direct": 1, "simplestreams": 2}
_NAMES = {v: k for k, v in PROTOCOLS.items()}

_IMAGE_ID = f"(SELECT id FROM images WHERE project_id = {lxd.PROJECT_ID} AND fingerprint = ?)"
_PROJECT = "(SELECT name FROM projects WHERE id = i.project_id)"


def _source(r: dict) -> dict:
    # The order and fields of LXD's api.ImageSource (image_type is not stored, as in LXD).
    return {"alias": r["alias"], "certificate": r["certificate"],
            "protocol": _NAMES.get(r["protocol"], "lxd"), "server": r["server"], "image_type": ""}


async def source(tx: Tx, project: str, fingerprint: str) -> dict | None:
    r = await tx.fetchone(f"SELECT server, protocol, certificate, alias FROM images_source "
                          f"WHERE image_id = {_IMAGE_ID}", [project, fingerprint])
    return _source(r) if r else None


async def sources(tx: Tx, project: str) -> dict[str, dict]:
    """fingerprint -> source, for every image of `project` that has one."""
    rows = await tx.fetch("SELECT i.fingerprint AS fingerprint, s.server AS server, s.protocol AS protocol, "
                          "s.certificate AS certificate, s.alias AS alias FROM images_source s "
                          f"JOIN images i ON i.id = s.image_id WHERE i.project_id = {lxd.PROJECT_ID}", [project])
    return {r["fingerprint"]: _source(r) for r in rows}


async def create_source(tx: Tx, project: str, fingerprint: str, src: dict) -> None:
    await tx.execute(f"INSERT INTO images_source (image_id, server, protocol, certificate, alias) "
                     f"SELECT id, ?, ?, ?, ? FROM images WHERE project_id = {lxd.PROJECT_ID} AND fingerprint = ?",
                     [src["server"], PROTOCOLS[src.get("protocol") or "lxd"], src.get("certificate") or "",
                      src["alias"], project, fingerprint])


async def delete_source(tx: Tx, project: str, fingerprint: str) -> None:
    await tx.execute(f"DELETE FROM images_source WHERE image_id = {_IMAGE_ID}", [project, fingerprint])


async def cached_source_fingerprint(tx: Tx, project: str, server: str, protocol: str, alias: str) -> str | None:
    """A cached image of `project` downloaded from server/protocol/alias (LXD's
    GetCachedImageSourceFingerprint): the newest one."""
    r = await tx.fetchone("SELECT i.fingerprint AS fingerprint FROM images_source s JOIN images i ON i.id = s.image_id "
                          f"WHERE i.project_id = {lxd.PROJECT_ID} AND i.cached = 1 AND s.server = ? AND s.protocol = ? "
                          "AND s.alias = ? "
                          "ORDER BY i.id DESC LIMIT 1", [project, server, PROTOCOLS.get(protocol, 0), alias])
    return r["fingerprint"] if r else None


async def set_cached(tx: Tx, project: str, fingerprint: str, cached: bool, last_used_at: str | None = None) -> None:
    if last_used_at is None:
        await tx.execute(f"UPDATE images SET cached = ? WHERE project_id = {lxd.PROJECT_ID} AND fingerprint = ?",
                         [int(cached), project, fingerprint])
    else:
        await tx.execute(f"UPDATE images SET cached = ?, last_use_date = ? WHERE project_id = {lxd.PROJECT_ID} "
                         "AND fingerprint = ?",
                         [int(cached), last_used_at, project, fingerprint])


async def cached_images(tx: Tx, project: str) -> list[dict]:
    """Cached images of `project`: fingerprint, last_used_at, uploaded_at."""
    rows = await tx.fetch("SELECT fingerprint, last_use_date, upload_date FROM images "
                          f"WHERE project_id = {lxd.PROJECT_ID} AND cached = 1 ORDER BY id", [project])
    return [{"fingerprint": r["fingerprint"], "last_used_at": r["last_use_date"] or lxd_zero(),
             "uploaded_at": r["upload_date"] or lxd_zero()} for r in rows]


async def auto_update_images(tx: Tx) -> list[dict]:
    """Every image with auto_update set, in any project: project, fingerprint."""
    return await tx.fetch(f"SELECT {_PROJECT} AS project, i.fingerprint AS fingerprint FROM images i "
                          "WHERE i.auto_update = 1 ORDER BY i.id")


async def move_aliases(tx: Tx, project: str, old: str, new: str) -> None:
    await tx.execute(f"UPDATE images_aliases SET image_id = {_IMAGE_ID} WHERE image_id = {_IMAGE_ID}",
                     [project, new, project, old])


async def any_cached(tx: Tx) -> bool:
    return await tx.fetchone("SELECT 1 AS one FROM images WHERE cached = 1 LIMIT 1") is not None


def lxd_zero() -> str:
    return "0001-01-01T00:00:00Z"
