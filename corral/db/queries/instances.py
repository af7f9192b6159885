"""Instances and their snapshots."""
from __future__ import annotations

from corral.db import Tx
from corral.db.queries import lxd
from corral.errors import BadRequest

_SELECT = ("SELECT i.id AS id, p.name AS project, i.name AS name, n.name AS node, i.node_id AS node_id, i.type AS type, "
           "i.architecture AS architecture, i.ephemeral AS ephemeral, i.stateful AS stateful, "
           "i.description AS description, i.creation_date AS created_at, i.last_use_date AS last_used_at "
           "FROM instances i JOIN projects p ON p.id = i.project_id LEFT JOIN nodes n ON n.id = i.node_id ")


def _str_map(v, what: str, errors: list[str]) -> dict[str, str]:
    """The string entries of a stored map; anything else (a NULL value) is dropped and reported."""
    out = {k: x for k, x in v.items() if isinstance(k, str) and isinstance(x, str)}
    if len(out) != len(v):
        errors.append(f"{what} has entries that are not strings")
    return out


def _row(r: dict, config: dict, devices: dict, profiles: list[str]) -> dict:
    """A row as Corral writes it. A row written some other way (by hand, with `corrald sql`) still
    loads with what can be read, so the instance lists, stops and deletes; `load_error` says what
    is wrong and start refuses it."""
    errors: list[str] = []
    cfg = _str_map(config, "config", errors)
    devs = {k: _str_map(d, f'device "{k}"', errors) for k, d in devices.items()}
    row = {"id": r["id"], "project": r["project"], "name": r["name"], "node": r["node"] or "none",
           "node_id": r.get("node_id"),
           "type": lxd.instance_type_name(r["type"]), "architecture": lxd.arch_name(r["architecture"]),
           "ephemeral": bool(r["ephemeral"]), "stateful": bool(r["stateful"]),
           "description": r["description"] or "", "created_at": _date(r["created_at"]),
           "last_used_at": _date(r["last_used_at"]), "config": cfg, "devices": devs, "profiles": profiles}
    if errors:
        row["load_error"] = "; ".join(errors)
    return row


def _date(v) -> str:
    return v if isinstance(v, str) else "1970-01-01T00:00:00Z"


async def _profiles_of(tx: Tx, ids: list[int]) -> dict[int, list[str]]:
    if not ids:
        return {}
    out: dict[int, list[str]] = {}
    rows = await lxd.fetch_in(tx, "SELECT ip.instance_id AS owner, pr.name AS name FROM instances_profiles ip "
                              "JOIN profiles pr ON pr.id = ip.profile_id WHERE ip.instance_id IN "
                              "({marks}) ORDER BY ip.instance_id, ip.apply_order, ip.id", ids)
    for r in rows:
        out.setdefault(r["owner"], []).append(r["name"])
    return out


async def _rows(tx: Tx, rows: list[dict]) -> list[dict]:
    ids = [r["id"] for r in rows]
    config = await lxd.config_of(tx, "instances_config", "instance_id", ids)
    devices = await lxd.devices_of(tx, "instances", "instance_id", ids)
    profiles = await _profiles_of(tx, ids)
    return [_row(r, config.get(r["id"], {}), devices.get(r["id"], {}), profiles.get(r["id"], [])) for r in rows]


async def _id(tx: Tx, project: str, name: str) -> int | None:
    r = await tx.fetchone("SELECT i.id AS id FROM instances i JOIN projects p ON p.id = i.project_id "
                          "WHERE p.name = ? AND i.name = ?", [project, name])
    return r["id"] if r else None


# The project whose profiles an instance of project ? uses (LXD's ProfileProject): its own with
# features.profiles=true, else the default project's.
_PROFILE_PROJECT_ID = (
    "(SELECT CASE WHEN EXISTS (SELECT 1 FROM projects_config pc JOIN projects pr ON pr.id = pc.project_id "
    "WHERE pr.name = ? AND pc.key = 'features.profiles' AND lower(pc.value) IN ('true', '1', 'yes', 'on')) "
    "THEN (SELECT id FROM projects WHERE name = ?) ELSE 1 END)")


async def _set_profiles(tx: Tx, instance_id: int, project_id_sql: str, project: str, names: list[str]) -> None:
    if (await _profiles_of(tx, [instance_id])).get(instance_id, []) == list(names):
        return
    await tx.execute("DELETE FROM instances_profiles WHERE instance_id = ?", [instance_id])
    for order, pname in enumerate(names):
        _, n = await tx.execute(f"INSERT INTO instances_profiles (instance_id, profile_id, apply_order) SELECT ?, id, ? "
                                f"FROM profiles WHERE project_id = {_PROFILE_PROJECT_ID} AND name = ?",
                                [instance_id, order, project, project, pname])
        if n != 1:   # instances_profiles refers to profile rows: a name must exist (LXD's error)
            raise BadRequest(f'Requested profile "{pname}" doesn\'t exist')


def _copy(r: dict) -> dict:
    """A record callers may change without changing the memoised one."""
    return {**r, "config": dict(r["config"]), "devices": {k: dict(d) for k, d in r["devices"].items()},
            "profiles": list(r["profiles"])}


async def get_all(tx: Tx, project: str | None = None) -> list[dict]:
    """Every instance (of `project`), memoised until the next write to the database: listings,
    used_by and the per-launch checks read all instances, and decoding them is most of the cost."""
    rows = tx.memo(("instances", project))
    if rows is None:
        if project is None:
            rows = await _rows(tx, await tx.fetch(_SELECT + "ORDER BY p.name, i.name"))
        else:
            rows = await _rows(tx, await tx.fetch(_SELECT + "WHERE p.name = ? ORDER BY i.name", [project]))
        tx.remember(("instances", project), rows)
    return [_copy(r) for r in rows]


async def names(tx: Tx, project: str) -> list[str]:
    """The names of `project`'s instances (one column: no config, devices or profiles)."""
    rows = await tx.fetch("SELECT i.name AS name FROM instances i JOIN projects p ON p.id = i.project_id "
                          "WHERE p.name = ? ORDER BY i.name", [project])
    return [r["name"] for r in rows]


async def get(tx: Tx, project: str, name: str) -> dict | None:
    for key in (("instances", project), ("instances", None)):   # a listing read them all just now
        rows = tx.memo(key)
        if rows is not None:
            hit = next((r for r in rows if r["project"] == project and r["name"] == name), None)
            return _copy(hit) if hit is not None else None
    r = await tx.fetchone(_SELECT + "WHERE p.name = ? AND i.name = ?", [project, name])
    return (await _rows(tx, [r]))[0] if r else None


async def create(tx: Tx, i: dict) -> int:
    node = i.get("node", "none")
    rowid, _ = await tx.execute(
        f"INSERT INTO instances (node_id, name, architecture, type, ephemeral, creation_date, stateful, "
        f"last_use_date, description, project_id) VALUES (COALESCE((SELECT id FROM nodes WHERE name = ?), "
        f"{lxd.LOCAL_NODE_ID}), ?, ?, ?, ?, ?, ?, ?, ?, {lxd.PROJECT_ID})",
        [node, i["name"], lxd.arch_code(i["architecture"]), lxd.instance_type_code(i.get("type", "container")),
         int(i.get("ephemeral", False)), i["created_at"], int(i.get("stateful", False)), i["last_used_at"],
         i.get("description", ""), i["project"]])
    await lxd.set_config(tx, "instances_config", "instance_id", rowid, i["config"])
    await lxd.set_devices(tx, "instances", "instance_id", rowid, i["devices"])
    await _set_profiles(tx, rowid, lxd.PROJECT_ID, i["project"], i["profiles"])
    return rowid


async def update(tx: Tx, project: str, name: str, i: dict) -> None:
    iid = await _id(tx, project, name)
    if iid is None:
        return
    await tx.execute("UPDATE instances SET architecture = ?, ephemeral = ?, description = ? WHERE id = ?",
                     [lxd.arch_code(i["architecture"]), int(i["ephemeral"]), i["description"], iid])
    await lxd.set_config(tx, "instances_config", "instance_id", iid, i["config"])
    await lxd.set_devices(tx, "instances", "instance_id", iid, i["devices"])
    await _set_profiles(tx, iid, lxd.PROJECT_ID, project, i["profiles"])


async def set_config(tx: Tx, project: str, name: str, config: dict) -> None:
    iid = await _id(tx, project, name)
    if iid is not None:
        await lxd.set_config(tx, "instances_config", "instance_id", iid, config)


async def touch(tx: Tx, project: str, name: str, when: str) -> None:
    await tx.execute(f"UPDATE instances SET last_use_date = ? WHERE project_id = {lxd.PROJECT_ID} AND name = ?",
                     [when, project, name])


async def rename(tx: Tx, project: str, old: str, new: str) -> None:
    await tx.execute(f"UPDATE instances SET name = ? WHERE project_id = {lxd.PROJECT_ID} AND name = ?",
                     [new, project, old])


async def delete(tx: Tx, project: str, name: str) -> None:
    """The instance row; its config, devices, profiles and snapshots go with it (ON DELETE CASCADE)."""
    iid = await _id(tx, project, name)
    if iid is not None:
        await tx.execute("DELETE FROM instances WHERE id = ?", [iid])


# ---- snapshots ------------------------------------------------------------------------------

_SSELECT = ("SELECT s.id AS id, s.instance_id AS instance_id, s.name AS name, s.creation_date AS created_at, "
            "s.expiry_date AS expires_at, s.stateful AS stateful, s.description AS description, "
            "i.architecture AS architecture FROM instances_snapshots s JOIN instances i ON i.id = s.instance_id ")


async def _snaps(tx: Tx, rows: list[dict]) -> list[dict]:
    """Snapshot rows with their config, devices and profiles (architecture is the instance's, as in LXD)."""
    ids = [r["id"] for r in rows]
    config = await lxd.config_of(tx, "instances_snapshots_config", "instance_snapshot_id", ids)
    devices = await lxd.devices_of(tx, "instances_snapshots", "instance_snapshot_id", ids)
    profiles: dict[int, list[str]] = {}
    if ids:
        for r in await lxd.fetch_in(tx, "SELECT instance_snapshot_id AS owner, name FROM "
                                    "corral_instances_snapshots_profiles WHERE instance_snapshot_id IN ({marks}) "
                                    "ORDER BY instance_snapshot_id, apply_order, id", ids):
            profiles.setdefault(r["owner"], []).append(r["name"])
    return [{"name": r["name"], "created_at": _date(r["created_at"]), "expires_at": _date(r["expires_at"]),
             "stateful": bool(r["stateful"]), "description": r["description"] or "",
             "architecture": lxd.arch_name(r["architecture"]), "config": config.get(r["id"], {}),
             "devices": devices.get(r["id"], {}), "profiles": profiles.get(r["id"], []),
             "_instance_id": r["instance_id"]} for r in rows]


def _public(s: dict) -> dict:
    s = dict(s)
    s.pop("_instance_id", None)
    return s


async def snapshots(tx: Tx, instance_id: int) -> list[dict]:
    rows = await tx.fetch(_SSELECT + "WHERE s.instance_id = ? ORDER BY s.creation_date, s.id", [instance_id])
    return [_public(s) for s in await _snaps(tx, rows)]


async def snapshots_of_all(tx: Tx) -> dict[int, list[dict]]:
    """Every snapshot, by instance id (a few queries for listings)."""
    out: dict[int, list[dict]] = {}
    for s in await _snaps(tx, await tx.fetch(_SSELECT + "ORDER BY s.creation_date, s.id")):
        out.setdefault(s["_instance_id"], []).append(_public(s))
    return out


async def snapshot(tx: Tx, instance_id: int, name: str) -> dict | None:
    r = await tx.fetchone(_SSELECT + "WHERE s.instance_id = ? AND s.name = ?", [instance_id, name])
    return _public((await _snaps(tx, [r]))[0]) if r else None


async def create_snapshot(tx: Tx, instance_id: int, s: dict) -> None:
    sid, _ = await tx.execute(
        "INSERT INTO instances_snapshots (instance_id, name, creation_date, stateful, description, expiry_date) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [instance_id, s["name"], s["created_at"], int(s.get("stateful", False)), s.get("description", ""),
         s["expires_at"]])
    await lxd.set_config(tx, "instances_snapshots_config", "instance_snapshot_id", sid, s["config"])
    await lxd.set_devices(tx, "instances_snapshots", "instance_snapshot_id", sid, s["devices"])
    for order, pname in enumerate(s["profiles"]):
        await tx.execute("INSERT INTO corral_instances_snapshots_profiles (instance_snapshot_id, name, apply_order) "
                         "VALUES (?, ?, ?)", [sid, pname, order])


async def update_snapshot(tx: Tx, instance_id: int, name: str, *, expires_at: str, description: str) -> None:
    await tx.execute("UPDATE instances_snapshots SET expiry_date = ?, description = ? WHERE instance_id = ? AND name = ?",
                     [expires_at, description, instance_id, name])


async def rename_snapshot(tx: Tx, instance_id: int, old: str, new: str) -> None:
    await tx.execute("UPDATE instances_snapshots SET name = ? WHERE instance_id = ? AND name = ?",
                     [new, instance_id, old])


async def delete_snapshot(tx: Tx, instance_id: int, name: str) -> None:
    await tx.execute("DELETE FROM instances_snapshots WHERE instance_id = ? AND name = ?", [instance_id, name])
