"""Shared pieces of LXD's table layout: the integer codes LXD stores, and key/value and device rows.

LXD keeps every config map as rows of a `<object>_config` table (id, <object>_id, key, value) and
every device map as `<object>_devices` (id, <object>_id, name, type) + `<object>_devices_config`.
"""
from __future__ import annotations

import json

from corral.db import Tx

ARCHITECTURES = {"i686": 1, "x86_64": 2, "armv7l": 3, "aarch64": 4, "ppc": 5, "ppc64": 6, "ppc64le": 7,
                 "s390x": 8, "mips": 9, "mips64": 10, "riscv32": 11, "riscv64": 12}
_ARCH_NAMES = {v: k for k, v in ARCHITECTURES.items()}

DEVICE_TYPES = {"none": 0, "nic": 1, "disk": 2, "unix-char": 3, "unix-block": 4, "usb": 5, "gpu": 6,
                "infiniband": 7, "proxy": 8, "unix-hotplug": 9, "tpm": 10, "pci": 11}
_DEVICE_NAMES = {v: k for k, v in DEVICE_TYPES.items()}

# dqlite refuses a statement with more than 255 parameters (the V0 tuple format of its protocol):
# lists of ids go in chunks of this many.
IN_CHUNK = 250


async def fetch_in(tx: Tx, sql: str, ids: list, params: list | None = None) -> list[dict]:
    """The rows of `sql` whose `{marks}` stands for the `?` list of `ids`, queried IN_CHUNK ids at
    a time (rows of one id come from one query, in that query's order); `params` go before the ids."""
    rows: list[dict] = []
    for i in range(0, len(ids), IN_CHUNK):
        part = list(ids[i:i + IN_CHUNK])
        rows += await tx.fetch(sql.format(marks=",".join("?" * len(part))), (params or []) + part)
    return rows


INSTANCE_TYPES = {"container": 0, "virtual-machine": 1}
_INSTANCE_NAMES = {v: k for k, v in INSTANCE_TYPES.items()}

VOLUME_TYPES = {"container": 0, "image": 1, "custom": 2, "virtual-machine": 3}
_VOLUME_NAMES = {v: k for k, v in VOLUME_TYPES.items()}

STATES = {"Pending": 0, "Created": 1, "Errored": 2, "Unknown": 3}
_STATE_NAMES = {v: k for k, v in STATES.items()}

CERT_TYPES = {"client": 1, "server": 2, "metrics": 3}
_CERT_NAMES = {v: k for k, v in CERT_TYPES.items()}

NETWORK_TYPES = {"bridge": 0, "macvlan": 1, "sriov": 2, "ovn": 3, "physical": 4}
_NETWORK_NAMES = {v: k for k, v in NETWORK_TYPES.items()}

WARNING_STATUS = {"new": 1, "acknowledged": 2, "resolved": 4}
_WARNING_STATUS_NAMES = {v: k for k, v in WARNING_STATUS.items()}

LOCAL_NODE_ID = 1   # the `nodes` row of this member ('none', as LXD names a standalone member)

PROJECT_ID = "(SELECT id FROM projects WHERE name = ?)"


def arch_code(name: str) -> int:
    return ARCHITECTURES.get(name, 0)


def arch_name(code) -> str:
    return _ARCH_NAMES.get(code, "unknown")


def instance_type_code(name: str) -> int:
    return INSTANCE_TYPES.get(name, 0)


def instance_type_name(code) -> str:
    return _INSTANCE_NAMES.get(code, "container")


def volume_type_code(name: str) -> int:
    return VOLUME_TYPES.get(name, -1)   # an unknown type matches nothing


def volume_type_name(code) -> str:
    return _VOLUME_NAMES.get(code, "custom")


def state_code(name: str) -> int:
    return STATES.get(name, 3)


def state_name(code) -> str:
    return _STATE_NAMES.get(code, "Unknown")


def cert_type_code(name: str) -> int:
    return CERT_TYPES.get(name, 1)


def cert_type_name(code) -> str:
    return _CERT_NAMES.get(code, "client")


def network_type_code(name: str) -> int:
    return NETWORK_TYPES.get(name, 0)


def network_type_name(code) -> str:
    return _NETWORK_NAMES.get(code, "bridge")


def warning_status_code(name: str) -> int:
    return WARNING_STATUS.get(name, 1)


def warning_status_name(code) -> str:
    return _WARNING_STATUS_NAMES.get(code, "new")


# ---- key/value rows --------------------------------------------------------------------------

async def config_of(tx: Tx, table: str, fk: str, ids: list[int] | None = None) -> dict[int, dict]:
    """{owner id: {key: value}} of a config table, keys sorted (values as stored: NULL stays None)."""
    if ids is not None and not ids:
        return {}
    # One row per owner, its map as a JSON object (decoded in C): rows of (owner, key, value) cost
    # the database client far more (a listing of a few hundred instances reads thousands of keys).
    where = f" WHERE {fk} IN ({{marks}})" if ids is not None else ""
    sql = (f"SELECT {fk} AS owner, json_group_object(key, CASE WHEN typeof(value) = 'blob' THEN NULL ELSE value END) "
           f"AS map FROM {table}{where} GROUP BY {fk}")
    rows = await fetch_in(tx, sql, ids) if ids is not None else await tx.fetch(sql)
    return {r["owner"]: dict(sorted(json.loads(r["map"]).items())) for r in rows}


_ROWS_PER_INSERT = 80    # 240 parameters: dqlite refuses a statement with more than 255


async def set_config(tx: Tx, table: str, fk: str, owner: int, config: dict) -> None:
    """Make an owner's config rows `config`, writing only the rows that change."""
    old = {r["key"]: (r["id"], r["value"])
           for r in await tx.fetch(f"SELECT id, key, value FROM {table} WHERE {fk} = ?", [owner])}
    gone = [row_id for k, (row_id, _) in old.items() if k not in config]
    if gone:
        for i in range(0, len(gone), IN_CHUNK):
            part = gone[i:i + IN_CHUNK]
            await tx.execute(f"DELETE FROM {table} WHERE id IN ({','.join('?' * len(part))})", part)
    new = [(k, v) for k, v in config.items() if k not in old]
    for i in range(0, len(new), _ROWS_PER_INSERT):   # one round trip for many rows
        rows = new[i:i + _ROWS_PER_INSERT]
        await tx.execute(f"INSERT INTO {table} ({fk}, key, value) VALUES {','.join(['(?, ?, ?)'] * len(rows))}",
                         [x for k, v in rows for x in (owner, k, v)])
    for k, v in config.items():
        if k in old and old[k][1] != v:
            await tx.execute(f"UPDATE {table} SET value = ? WHERE id = ?", [v, old[k][0]])


async def devices_of(tx: Tx, kind: str, fk: str, ids: list[int] | None = None) -> dict[int, dict]:
    """{owner id: {device: {key: value}}} of `<kind>_devices` + `<kind>_devices_config`. The
    `type` key comes from the type column (a type code LXD does not know reads as its number)."""
    if ids is not None and not ids:
        return {}
    dev_fk = {"instances": "instance_device_id", "profiles": "profile_device_id",
              "instances_snapshots": "instance_snapshot_device_id"}[kind]
    sql = (f"SELECT d.{fk} AS owner, d.name AS device, d.type AS type, c.key AS key, c.value AS value "
           f"FROM {kind}_devices d LEFT JOIN {kind}_devices_config c ON c.{dev_fk} = d.id")
    rows = (await fetch_in(tx, sql + f" WHERE d.{fk} IN ({{marks}}) ORDER BY d.name, c.key", ids) if ids is not None
            else await tx.fetch(sql + " ORDER BY d.name, c.key"))
    out: dict[int, dict] = {}
    for r in rows:
        dev = out.setdefault(r["owner"], {}).get(r["device"])
        if dev is None:
            dev = out[r["owner"]][r["device"]] = {}
            if r["type"]:
                dev["type"] = _DEVICE_NAMES.get(r["type"], str(r["type"]))
        if r["key"] is not None and not (r["key"] == "type" and r["type"]):
            dev[r["key"]] = r["value"]
    return out


def devices_from(items: list) -> dict[str, dict]:
    """{device: {key: value}} from [name, type code, its config (a JSON object)] items, as
    devices_of reads them (devices by name, `type` first, keys sorted)."""
    out: dict[str, dict] = {}
    for name, type_code, cfg in sorted(items, key=lambda x: x[0]):
        dev = out[name] = {}
        if type_code:
            dev["type"] = _DEVICE_NAMES.get(type_code, str(type_code))
        if not isinstance(cfg, dict):   # the JSON text (SQLite may or may not keep it an object)
            cfg = json.loads(cfg or "{}")
        for k, v in sorted(cfg.items()):
            if not (k == "type" and type_code):
                dev[k] = v
    return out


async def set_devices(tx: Tx, kind: str, fk: str, owner: int, devices: dict) -> None:
    """Make an owner's devices `devices` (a known `type` goes to the type column, as in LXD);
    devices that did not change keep their rows."""
    dev_fk = {"instances": "instance_device_id", "profiles": "profile_device_id",
              "instances_snapshots": "instance_snapshot_device_id"}[kind]
    old = (await devices_of(tx, kind, fk, [owner])).get(owner, {})
    gone = [n for n, d in old.items() if devices.get(n) != d]
    for name in gone:
        await tx.execute(f"DELETE FROM {kind}_devices WHERE {fk} = ? AND name = ?", [owner, name])
    for name, dev in devices.items():
        if old.get(name) == dev:
            continue
        code = DEVICE_TYPES.get(dev.get("type"), 0)
        dev_id, _ = await tx.execute(f"INSERT INTO {kind}_devices ({fk}, name, type) VALUES (?, ?, ?)",
                                     [owner, name, code])
        for k, v in dev.items():
            if k == "type" and code:
                continue
            await tx.execute(f"INSERT INTO {kind}_devices_config ({dev_fk}, key, value) VALUES (?, ?, ?)",
                             [dev_id, k, v])
