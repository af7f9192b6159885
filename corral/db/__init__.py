"""The database: a global dqlite database (one-member cluster when standalone) and a local sqlite3 file.

Use it through one small interface:

    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT ...", [args])
        await tx.execute("UPDATE ...", [args])

Query functions live in corral/db/queries/; no SQL elsewhere.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any, AsyncIterator

import dqliteclient

from corral.db.local import LocalDB, _split
from corral.db.node import Node
from corral.db.schema import GLOBAL

log = logging.getLogger(__name__)

DB_NAME = "global"


class Tx:
    """One open transaction (or autocommit session) on the global database."""

    def __init__(self, conn):
        self._conn = conn

    async def execute(self, sql: str, params: list | tuple | None = None) -> tuple[int, int]:
        """Returns (last_insert_id, rows_affected)."""
        return await self._conn.execute(sql, list(params or []))

    async def fetch(self, sql: str, params: list | tuple | None = None) -> list[dict[str, Any]]:
        return await self._conn.fetch(sql, list(params or []))

    async def fetchone(self, sql: str, params: list | tuple | None = None) -> dict[str, Any] | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def query_raw(self, sql: str, params: list | tuple | None = None):
        return await self._conn.query_raw(sql, list(params or []))


class Database:
    def __init__(self, state_dir: str, local_path: str, node_id: int = 1):
        self.state_dir = state_dir
        self.local_path = local_path
        self.local: LocalDB | None = None
        self.node_id = node_id
        self.node: Node | None = None
        self._conn = None
        self._lock = asyncio.Lock()

    @property
    def address(self) -> str:
        assert self.node is not None
        return self.node.address

    async def start(self) -> None:
        """Open the local database, start the embedded dqlite node, apply pending migrations."""
        self.local = LocalDB(self.local_path)
        # Standalone: an abstract unix socket with a fresh random name per start, so nothing
        # listens on TCP. Raft keeps working because a one-member cluster never dials itself.
        address = "@corral-db-" + secrets.token_hex(8)
        self.node = Node(self.node_id, address, self.state_dir)
        await asyncio.to_thread(self.node.start)
        self._conn = await self._connect()
        await self._migrate()

    async def _connect(self):
        abstract = "\0" + self.node.address[1:]

        async def dial(_addr: str):
            return await asyncio.open_unix_connection(abstract)

        last = None
        for _ in range(100):
            try:
                return await dqliteclient.connect("local:1", database=DB_NAME, dial_func=dial, timeout=10)
            except Exception as e:  # the node may need a moment to elect itself
                last = e
                await asyncio.sleep(0.05)
        raise RuntimeError(f"cannot connect to the database node: {last}")

    async def _migrate(self) -> None:
        async with self.transaction() as tx:
            await tx.execute("CREATE TABLE IF NOT EXISTS schema (version INTEGER PRIMARY KEY, applied_at TEXT)")
            row = await tx.fetchone("SELECT MAX(version) AS v FROM schema")
        version = (row or {}).get("v") or 0
        for n, script in enumerate(GLOBAL[version:], start=version + 1):
            log.info("applying global schema migration %d", n)
            async with self.transaction() as tx:
                for stmt in _split(script):
                    await tx.execute(stmt)
                await tx.execute("INSERT INTO schema (version, applied_at) VALUES (?, datetime('now'))", [n])

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._lock:
            async with self._conn.transaction():
                yield Tx(self._conn)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Tx]:
        """Reads (and single autocommit writes) without an explicit transaction."""
        async with self._lock:
            yield Tx(self._conn)

    async def query(self, sql: str) -> tuple[list[str], list[list]]:
        """Run one arbitrary statement (corrald sql global): (columns, rows), or for a
        statement that returns no rows (["rows_affected"], [[n]])."""
        async with self.session() as tx:
            if sql.lstrip().split(None, 1)[0].upper() in ("SELECT", "PRAGMA", "WITH", "EXPLAIN", "VALUES"):
                cols, rows = await tx.query_raw(sql)
                return list(cols or []), [list(r) for r in rows]
            _, affected = await tx.execute(sql)
            return ["rows_affected"], [[affected]]

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
        if self.node is not None:
            await asyncio.to_thread(self.node.stop)
            self.node = None
        if self.local is not None:
            self.local.close()
            self.local = None
