"""`lxd sql`'s server side: arbitrary statements on the global (dqlite) or local (sqlite3) database,
and a SQL text dump (`.dump`, `.schema`) of either.

A batch (statements separated by ";", as LXD splits them) runs in one transaction: when one statement
fails, the earlier ones are rolled back and nothing changes (LXD 5.0 does the same).
"""
from __future__ import annotations

import re

_ROW_KEYWORDS = ("SELECT", "PRAGMA", "WITH", "EXPLAIN", "VALUES")
_NODE_SUFFIX = re.compile(r" to local:\d+$")   # the dqlite client names the node it asked


class SQLError(Exception):
    pass


def split(query: str) -> list[str]:
    return [s.strip() for s in query.split(";") if s.strip()]


def _returns_rows(stmt: str) -> bool:
    return stmt.lstrip().split(None, 1)[0].upper() in _ROW_KEYWORDS


def _msg(e: Exception) -> str:
    return _NODE_SUFFIX.sub("", str(e))


def _plain(v):
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray, memoryview)) else v


def _select(cols, rows) -> dict:
    return {"type": "select", "columns": [str(c) for c in cols or []],
            "rows": [[_plain(v) for v in r] for r in rows], "rows_affected": 0}


def _exec(n: int) -> dict:
    return {"type": "exec", "columns": None, "rows": None, "rows_affected": n}


async def run_global(db, stmts: list[str]) -> list[dict]:
    out = []
    async with db.transaction() as tx:
        for stmt in stmts:
            if _returns_rows(stmt):
                try:
                    cols, rows = await tx.query_raw(stmt)
                except Exception as e:
                    raise SQLError(f"Failed to execute query: {_msg(e)}") from None
                out.append(_select(cols, rows))
            else:
                try:
                    _, n = await tx.execute(stmt)
                except Exception as e:
                    raise SQLError(f"Failed to exec query: {_msg(e)}") from None
                out.append(_exec(n))
    return out


def run_local(local, stmts: list[str]) -> list[dict]:
    conn = local.conn
    out = []
    conn.execute("BEGIN")
    try:
        for stmt in stmts:
            try:
                cur = conn.execute(stmt)
            except Exception as e:
                raise SQLError(f"Failed to {'execute' if _returns_rows(stmt) else 'exec'} query: {e}") from None
            if cur.description:
                out.append(_select([d[0] for d in cur.description], cur.fetchall()))
            else:
                out.append(_exec(cur.rowcount if cur.rowcount >= 0 else 0))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return out


def _literal(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "X'" + bytes(v).hex().upper() + "'"
    return "'" + str(v).replace("'", "''") + "'"


def _render_dump(master: list[tuple[str, str, str, str]], table_rows: dict[str, list[list]],
                 schema_only: bool) -> str:
    """sqlite3's .dump layout: tables (each followed by its rows), sqlite_sequence, then indexes,
    triggers and views; all in one transaction."""
    lines = ["PRAGMA foreign_keys=OFF;", "BEGIN TRANSACTION;"]
    for type_, name, _tbl, sql in master:
        if type_ != "table" or not sql or name.startswith("sqlite_"):
            continue
        lines.append(sql + ";")
        if not schema_only:
            for row in table_rows.get(name, []):
                lines.append(f"INSERT INTO {_ident(name)} VALUES({','.join(_literal(v) for v in row)});")
    if not schema_only:
        for row in table_rows.get("sqlite_sequence", []):
            lines.append(f"INSERT INTO sqlite_sequence VALUES({','.join(_literal(v) for v in row)});")
    for type_, name, _tbl, sql in master:
        if type_ in ("index", "trigger", "view") and sql:
            lines.append(sql + ";")
    lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def _ident(name: str) -> str:
    return name if name.replace("_", "").isalnum() else '"' + name.replace('"', '""') + '"'


_MASTER = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"


async def dump_global(db, schema_only: bool) -> str:
    async with db.transaction() as tx:
        _, master = await tx.query_raw(_MASTER)
        master = [tuple(r) for r in master]
        rows: dict[str, list[list]] = {}
        if not schema_only:
            for type_, name, _t, _s in master:
                if type_ == "table" and (not name.startswith("sqlite_") or name == "sqlite_sequence"):
                    _, rows[name] = await tx.query_raw(f"SELECT * FROM {_ident(name)}")
    return _render_dump(master, rows, schema_only)


def dump_local(local, schema_only: bool) -> str:
    conn = local.conn
    master = [tuple(r) for r in conn.execute(_MASTER).fetchall()]
    rows: dict[str, list[list]] = {}
    if not schema_only:
        for type_, name, _t, _s in master:
            if type_ == "table" and (not name.startswith("sqlite_") or name == "sqlite_sequence"):
                rows[name] = conn.execute(f"SELECT * FROM {_ident(name)}").fetchall()
    return _render_dump(master, rows, schema_only)
