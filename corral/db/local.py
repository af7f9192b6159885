"""Member-local state in a sqlite3 file, LXD's local tables: config (core.https_address...), patches,
raft_nodes, certificates."""
from __future__ import annotations

import sqlite3

from corral.db.schema import LOCAL


class LocalDB:
    def __init__(self, path: str):
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for n, script in enumerate(LOCAL[version:], start=version + 1):
            with self.conn:
                self.conn.execute("BEGIN")
                for stmt in _split(script):
                    self.conn.execute(stmt)
                self.conn.execute(f"PRAGMA user_version = {n}")

    def get_config(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM config"))

    def set_config(self, changes: dict[str, str | None]) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            for k, v in changes.items():
                if v in (None, ""):
                    self.conn.execute("DELETE FROM config WHERE key = ?", (k,))
                else:
                    self.conn.execute("INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", (k, v))

    def raft_nodes(self) -> list[dict]:
        cur = self.conn.execute("SELECT id, address, role, name FROM raft_nodes ORDER BY id")
        return [dict(zip(("id", "address", "role", "name"), r)) for r in cur]

    def set_raft_nodes(self, nodes: list[dict]) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM raft_nodes")
            for n in nodes:
                self.conn.execute("INSERT INTO raft_nodes (id, address, role, name) VALUES (?, ?, ?, ?)",
                                  (n["id"], n["address"], n.get("role", 0), n.get("name", "")))

    def patches(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM patches ORDER BY id")]

    def add_patch(self, name: str) -> None:
        """Record a one-time start-up change as applied (LXD's `patches` table)."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("INSERT OR IGNORE INTO patches (name, applied_at) VALUES (?, datetime('now'))", (name,))

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        cur = self.conn.execute(sql)
        cols = [d[0] for d in cur.description] if cur.description else []
        return cols, cur.fetchall()

    def close(self) -> None:
        self.conn.close()


def read_config_readonly(path: str, key: str) -> str:
    """One member config value read without opening the database for writing (no migration):
    what `corrald activateifneeded` needs with or without a running daemon. "" when unset."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM config WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        row = None
    finally:
        conn.close()
    return (row or [""])[0] or ""


def _split(script: str) -> list[str]:
    """Statements of a migration script (migrations keep semicolons out of literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]
