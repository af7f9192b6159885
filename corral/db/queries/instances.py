"""Instances and their snapshots."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import dumps, loads

_COLS = ("id, project, name, node, type, architecture, ephemeral, stateful, description, created_at, "
         "last_used_at, config, devices, profiles")


def _str_map(v, what: str, errors: list[str]) -> dict[str, str]:
    """The string entries of a stored map; anything else is dropped and reported."""
    if not isinstance(v, dict):
        errors.append(f"{what} is not a map")
        return {}
    out = {k: x for k, x in v.items() if isinstance(k, str) and isinstance(x, str)}
    if len(out) != len(v):
        errors.append(f"{what} has entries that are not strings")
    return out


def _decode(r: dict, column: str, errors: list[str]):
    """A JSON column as Corral writes it. A row written some other way (by hand, with `corrald sql`)
    still loads with what can be read, so the instance lists, stops and deletes; `load_error`
    says what is wrong and start refuses it."""
    try:
        v = loads(r[column])
    except (ValueError, TypeError):
        errors.append(f"{column} is not valid JSON")
        v = [] if column == "profiles" else {}
    if column == "config":
        return _str_map(v, "config", errors)
    if column == "devices":
        if not isinstance(v, dict):
            errors.append("devices is not a map")
            return {}
        devices = {}
        for k, d in v.items():
            if isinstance(k, str) and isinstance(d, dict):
                devices[k] = _str_map(d, f'device "{k}"', errors)
            else:
                errors.append(f"device {k!r} is not a map")
        return devices
    if v in ({}, None):
        return []
    if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
        errors.append("profiles is not a list of names")
        return []
    return v


def _row(r: dict) -> dict:
    errors: list[str] = []
    row = {"id": r["id"], "project": r["project"], "name": r["name"], "node": r["node"], "type": r["type"],
           "architecture": r["architecture"], "ephemeral": bool(r["ephemeral"]), "stateful": bool(r["stateful"]),
           "description": r["description"], "created_at": r["created_at"], "last_used_at": r["last_used_at"],
           "config": _decode(r, "config", errors), "devices": _decode(r, "devices", errors),
           "profiles": _decode(r, "profiles", errors)}
    if errors:
        row["load_error"] = "; ".join(errors)
    return row


async def get_all(tx: Tx, project: str | None = None) -> list[dict]:
    if project is None:
        return [_row(r) for r in await tx.fetch(f"SELECT {_COLS} FROM instances ORDER BY project, name")]
    return [_row(r) for r in await tx.fetch(f"SELECT {_COLS} FROM instances WHERE project = ? ORDER BY name",
                                            [project])]


async def get(tx: Tx, project: str, name: str) -> dict | None:
    r = await tx.fetchone(f"SELECT {_COLS} FROM instances WHERE project = ? AND name = ?", [project, name])
    return _row(r) if r else None


async def create(tx: Tx, i: dict) -> int:
    rowid, _ = await tx.execute(
        "INSERT INTO instances (project, name, node, type, architecture, ephemeral, stateful, description, "
        "created_at, last_used_at, config, devices, profiles) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [i["project"], i["name"], i.get("node", "none"), i.get("type", "container"), i["architecture"],
         int(i.get("ephemeral", False)), int(i.get("stateful", False)), i.get("description", ""),
         i["created_at"], i["last_used_at"], dumps(i["config"]), dumps(i["devices"]), dumps(i["profiles"])])
    return rowid


async def update(tx: Tx, project: str, name: str, i: dict) -> None:
    await tx.execute(
        "UPDATE instances SET architecture = ?, ephemeral = ?, description = ?, config = ?, devices = ?, "
        "profiles = ? WHERE project = ? AND name = ?",
        [i["architecture"], int(i["ephemeral"]), i["description"], dumps(i["config"]), dumps(i["devices"]),
         dumps(i["profiles"]), project, name])


async def set_config(tx: Tx, project: str, name: str, config: dict) -> None:
    await tx.execute("UPDATE instances SET config = ? WHERE project = ? AND name = ?", [dumps(config), project, name])


async def touch(tx: Tx, project: str, name: str, when: str) -> None:
    await tx.execute("UPDATE instances SET last_used_at = ? WHERE project = ? AND name = ?", [when, project, name])


async def rename(tx: Tx, project: str, old: str, new: str) -> None:
    await tx.execute("UPDATE instances SET name = ? WHERE project = ? AND name = ?", [new, project, old])


async def delete(tx: Tx, project: str, name: str) -> None:
    r = await tx.fetchone("SELECT id FROM instances WHERE project = ? AND name = ?", [project, name])
    if r:
        await tx.execute("DELETE FROM instances_snapshots WHERE instance_id = ?", [r["id"]])
        await tx.execute("DELETE FROM instances WHERE id = ?", [r["id"]])


# ---- snapshots ------------------------------------------------------------------------------

_SCOLS = "name, created_at, expires_at, stateful, description, architecture, config, devices, profiles"


def _snap(r: dict) -> dict:
    return {"name": r["name"], "created_at": r["created_at"], "expires_at": r["expires_at"],
            "stateful": bool(r["stateful"]), "description": r["description"], "architecture": r["architecture"],
            "config": loads(r["config"]), "devices": loads(r["devices"]), "profiles": loads(r["profiles"]) or []}


async def snapshots(tx: Tx, instance_id: int) -> list[dict]:
    return [_snap(r) for r in await tx.fetch(
        f"SELECT {_SCOLS} FROM instances_snapshots WHERE instance_id = ? ORDER BY created_at, id", [instance_id])]


async def snapshots_of_all(tx: Tx) -> dict[int, list[dict]]:
    """Every snapshot, by instance id (one query for listings)."""
    out: dict[int, list[dict]] = {}
    for r in await tx.fetch(f"SELECT instance_id, {_SCOLS} FROM instances_snapshots ORDER BY created_at, id"):
        out.setdefault(r["instance_id"], []).append(_snap(r))
    return out


async def snapshot(tx: Tx, instance_id: int, name: str) -> dict | None:
    r = await tx.fetchone(f"SELECT {_SCOLS} FROM instances_snapshots WHERE instance_id = ? AND name = ?",
                          [instance_id, name])
    return _snap(r) if r else None


async def create_snapshot(tx: Tx, instance_id: int, s: dict) -> None:
    await tx.execute(
        f"INSERT INTO instances_snapshots (instance_id, {_SCOLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [instance_id, s["name"], s["created_at"], s["expires_at"], int(s.get("stateful", False)),
         s.get("description", ""), s["architecture"], dumps(s["config"]), dumps(s["devices"]),
         dumps(s["profiles"])])


async def update_snapshot(tx: Tx, instance_id: int, name: str, *, expires_at: str, description: str) -> None:
    await tx.execute("UPDATE instances_snapshots SET expires_at = ?, description = ? WHERE instance_id = ? AND name = ?",
                     [expires_at, description, instance_id, name])


async def rename_snapshot(tx: Tx, instance_id: int, old: str, new: str) -> None:
    await tx.execute("UPDATE instances_snapshots SET name = ? WHERE instance_id = ? AND name = ?",
                     [new, instance_id, old])


async def delete_snapshot(tx: Tx, instance_id: int, name: str) -> None:
    await tx.execute("DELETE FROM instances_snapshots WHERE instance_id = ? AND name = ?", [instance_id, name])
