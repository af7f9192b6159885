"""SQL of `corral migrate-from-lxd`: LXD 5.0's global database, read from `lxd sql global .dump`, turned
into a patch for Corral's (database/patch.global.sql, applied at corrald's first start in one
transaction, before anything is loaded).

Both databases have LXD 5.0.2's tables and columns (docs/database.md). The dump is loaded into an
in-memory sqlite3 database, Corral's schema is built in another from corral/db/schema.py, and every
table both have is copied over, rows and ids as they are, for the columns both have. Not copied:
`schema` (each keeps its own migration history), `nodes` (Corral's standalone member row 1 stays:
LXD's has the same id), `sqlite_sequence`, and `warnings` (LXD's findings about its own host; Corral
makes its own). Corral's own tables are filled where LXD has the data elsewhere: a snapshot's
profiles (`corral_instances_snapshots_profiles`, LXD shows the instance's) and the volume creation
dates (LXD 5.0.2 has none: left empty, shown as LXD shows them, 0001-01-01).
"""
from __future__ import annotations

import re
import sqlite3

from corral.db.local import _split
from corral.db.schema import GLOBAL

SKIPPED = ("schema", "nodes", "sqlite_sequence", "warnings")
# Tables whose rows Corral's fresh database already has (defaults), replaced by LXD's.
_DEFAULT_ROWS = ("projects", "profiles", "cluster_groups", "nodes_cluster_groups", "config")
_CHILDREN_OF_DEFAULTS = ("projects_config", "profiles_config", "profiles_devices", "profiles_devices_config")


def load_dump(text: str) -> sqlite3.Connection:
    """The dump of `lxd sql global .dump` (sqlite's .dump format) in an in-memory database."""
    db = sqlite3.connect(":memory:")
    db.executescript(text)
    return db


def corral_schema() -> sqlite3.Connection:
    """Corral's current global schema (and its default rows) in an in-memory database."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE IF NOT EXISTS schema (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for script in GLOBAL:
        for stmt in _split(script):
            db.execute(stmt)
    return db


def tables(db: sqlite3.Connection) -> dict[str, list[str]]:
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: [c[1] for c in db.execute(f'PRAGMA table_info("{n}")')] for n in names}


def count(db: sqlite3.Connection, table: str) -> int:
    return db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def scalar(db: sqlite3.Connection, sql: str, params: tuple = ()):
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None


def rows(db: sqlite3.Connection, sql: str, params: tuple = ()) -> list[tuple]:
    return db.execute(sql, params).fetchall()


# What the checks read from the dump.
def schema_version(db: sqlite3.Connection) -> int | None:
    return scalar(db, "SELECT MAX(version) FROM schema")


def member_count(db: sqlite3.Connection) -> int:
    return scalar(db, "SELECT COUNT(*) FROM nodes") or 0


def pools(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return rows(db, "SELECT name, driver FROM storage_pools ORDER BY id")


def networks(db: sqlite3.Connection) -> list[tuple[str, int]]:
    return rows(db, "SELECT name, type FROM networks ORDER BY id")


def instances(db: sqlite3.Connection) -> list[tuple[int, str, str, int]]:
    return rows(db, "SELECT i.id, p.name, i.name, i.type FROM instances i JOIN projects p ON p.id = i.project_id "
                    "ORDER BY i.id")


def instance_config(db: sqlite3.Connection, instance_id: int) -> dict[str, str]:
    return dict(rows(db, "SELECT key, value FROM instances_config WHERE instance_id = ?", (instance_id,)))


def instance_devices(db: sqlite3.Connection, instance_id: int) -> list[tuple[str, int, dict]]:
    out = []
    for dev_id, name, typ in rows(db, "SELECT id, name, type FROM instances_devices WHERE instance_id = ?",
                                  (instance_id,)):
        cfg = dict(rows(db, "SELECT key, value FROM instances_devices_config WHERE instance_device_id = ?",
                        (dev_id,)))
        out.append((name, typ, cfg))
    return out


def profile_devices(db: sqlite3.Connection) -> list[tuple[str, str, str, int, dict]]:
    out = []
    for dev_id, proj, prof, name, typ in rows(
            db, "SELECT d.id, pj.name, p.name, d.name, d.type FROM profiles_devices d "
                "JOIN profiles p ON p.id = d.profile_id JOIN projects pj ON pj.id = p.project_id"):
        cfg = dict(rows(db, "SELECT key, value FROM profiles_devices_config WHERE profile_device_id = ?",
                        (dev_id,)))
        out.append((proj, prof, name, typ, cfg))
    return out


def config_rows(db: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return rows(db, f'SELECT key, value FROM "{table}"')


def _literal(v) -> str:
    """A SQL literal with no ";" in it (the patch is split on semicolons)."""
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, bytes):
        return "X'" + v.hex() + "'"
    s = str(v).replace("'", "''")
    if ";" in s:
        return "(" + " || char(59) || ".join(f"'{p}'" for p in s.split(";")) + ")"
    return f"'{s}'"


# `lxd sql .dump` prints DATETIME values as Go's time.String() does ("2006-01-02 15:04:05.999+00:00");
# Corral stores what LXD's API shows (RFC 3339, "2006-01-02T15:04:05.999Z").
_GO_TIME = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)(?:\+00:00| \+0000 UTC)")


def rfc3339(v: str) -> str:
    m = _GO_TIME.fullmatch(v)
    return f"{m.group(1)}T{m.group(2)}Z" if m else v


def _datetime_columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {c[1] for c in db.execute(f'PRAGMA table_info("{table}")') if "DATE" in (c[2] or "").upper()}


def _order(schema: sqlite3.Connection, names: list[str]) -> list[str]:
    """Tables ordered so that each comes after those its foreign keys reference."""
    deps = {n: {r[2] for r in schema.execute(f'PRAGMA foreign_key_list("{n}")')} & set(names) - {n}
            for n in names}
    out: list[str] = []
    while deps:
        ready = sorted(n for n, d in deps.items() if not d - set(out))
        if not ready:   # a cycle: keep the rest as they are (foreign keys are checked per statement)
            ready = sorted(deps)
        out += ready
        for n in ready:
            deps.pop(n)
    return out


def patch(lxd: sqlite3.Connection, rewrite) -> tuple[list[str], dict]:
    """The statements that make Corral's fresh database hold LXD's rows, and a summary
    {"tables": {name: rows}, "dropped_columns": {table: [cols with data]}, "lxd_only_tables": [...]}.
    `rewrite(value)` maps a text value (paths under the old data directory to the new one)."""
    corral = corral_schema()
    ct, lt = tables(corral), tables(lxd)
    common = [t for t in lt if t in ct and t not in SKIPPED and not t.startswith("corral_")]
    summary: dict = {"tables": {}, "dropped_columns": {}, "lxd_only_tables": sorted(
        t for t in lt if t not in ct and t not in SKIPPED and count(lxd, t))}
    order = _order(corral, common)
    # Every table written is emptied first, children first (not left to ON DELETE CASCADE).
    stmts = [f"DELETE FROM {t}" for t in reversed(order) if count(corral, t)
             or t in _DEFAULT_ROWS or t in _CHILDREN_OF_DEFAULTS]
    for t in order:
        cols = [c for c in lt[t] if c in ct[t]]
        lost = [c for c in lt[t] if c not in ct[t]
                and scalar(lxd, f'SELECT COUNT(*) FROM "{t}" WHERE "{c}" IS NOT NULL')]
        if lost:
            summary["dropped_columns"][t] = lost
        n = 0
        collist = ", ".join(cols)
        dates = _datetime_columns(corral, t)
        conv = [rfc3339 if c in dates else rewrite for c in cols]
        for row in lxd.execute(f'SELECT {collist} FROM "{t}"'):
            vals = ", ".join(_literal(f(v) if isinstance(v, str) else v) for f, v in zip(conv, row))
            stmts.append(f"INSERT INTO {t} ({collist}) VALUES ({vals})")
            n += 1
        summary["tables"][t] = n
    # A snapshot's profiles: the instance's, in order (what LXD 5.0 shows for a snapshot).
    if "corral_instances_snapshots_profiles" in ct:
        for snap_id, name, order in rows(
                lxd, "SELECT s.id, p.name, ip.apply_order FROM instances_snapshots s "
                     "JOIN instances_profiles ip ON ip.instance_id = s.instance_id "
                     "JOIN profiles p ON p.id = ip.profile_id ORDER BY s.id, ip.apply_order"):
            stmts.append("INSERT INTO corral_instances_snapshots_profiles (instance_snapshot_id, name, apply_order) "
                         f"VALUES ({snap_id}, {_literal(name)}, {order})")
    return stmts, summary


def set_last_state_running(project: str, name: str) -> str:
    """Mark an instance that ran before the migration, so corrald's start-up starts it again."""
    inst = (f"(SELECT i.id FROM instances i JOIN projects p ON p.id = i.project_id WHERE p.name = {_literal(project)} "
            f"AND i.name = {_literal(name)})")
    return (f"INSERT OR REPLACE INTO instances_config (instance_id, key, value) VALUES ({inst}, "
            f"'volatile.last_state.power', 'RUNNING')")


def loop_pool_sources(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(pool, source) of the pools whose source is a loop file (not a block device, not a directory)."""
    return rows(db, "SELECT p.name, c.value FROM storage_pools p JOIN storage_pools_config c "
                    "ON c.storage_pool_id = p.id WHERE c.key = 'source' AND p.driver = 'btrfs' "
                    "AND c.value LIKE '%.img'")
