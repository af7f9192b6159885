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
import os
import random
import re
import time
from typing import Any, AsyncIterator

import dqliteclient

from corral.db.local import LocalDB, _split
from corral.errors import CorralError
from corral.db.schema import GLOBAL

log = logging.getLogger(__name__)

DB_NAME = "global"


class DatabaseUnavailable(CorralError):
    """The connection to the database node was lost while a request used it (503: try again).
    `retryable`: nothing was committed (the loss came before COMMIT), so the caller may run it again."""
    status = 503

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


# Errors that mean the connection is gone (the next use reconnects), not that the SQL was wrong:
# a broken stream, or (clustered) the node we talk to lost its leadership.
_LOST = (dqliteclient.DqliteConnectionError, dqliteclient.ProtocolError, dqliteclient.ClusterError,
         OSError, TimeoutError)


BUSY_WAIT = 10.0   # seconds a transaction waits for another member's write lock


def _busy(e: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection (another member) holds the write lock."""
    code = getattr(e, "code", None)
    return isinstance(e, dqliteclient.OperationalError) and code is not None and (code & 0xFF) in (5, 6)


def _lost_error(db: "Database", e: BaseException) -> bool:
    if isinstance(e, _LOST):
        return True
    # A leadership change invalidates the connection (dqliteclient's _is_leader_change); a node
    # that just handed leadership over may also answer an I/O error or SQLITE_DONE ("no more rows
    # available") for a statement it can no longer run.
    if not isinstance(e, dqliteclient.OperationalError):
        return False
    code = (getattr(e, "code", 0) or 0) & 0xFF
    return db._conn is None or not db._conn.is_connected or code in (10, 101) or \
        (code == 7 and "no more rows" in str(e))
_READ_ONLY = ("SELECT", "PRAGMA", "WITH", "EXPLAIN", "VALUES")


_WRITTEN = re.compile(r"^\s*(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)\s+"
                      r"[\"`]?(\w+)", re.IGNORECASE)


def written_table(sql: str) -> str | None:
    """The table an INSERT/UPDATE/DELETE statement writes (None for anything else)."""
    m = _WRITTEN.match(sql)
    return m.group(1).lower() if m else None


def _read_only(sql: str) -> bool:
    words = sql.lstrip().split(None, 1)
    return bool(words) and words[0].upper() in _READ_ONLY


def _pure_read(sql: str) -> bool:
    """A statement that cannot write (a WITH ... may end in DELETE: it counts as a write)."""
    words = sql.lstrip().split(None, 1)
    return bool(words) and words[0].upper() == "SELECT"


class Tx:
    """One open transaction (or autocommit session) on the global database."""

    def __init__(self, db: "Database", in_transaction: bool):
        self._db = db
        self._in_tx = in_transaction

    def memo(self, key):
        """A value remembered with `remember` at the database's current write generation, or None.
        Only outside a transaction: a transaction's own uncommitted writes are never remembered."""
        return self._db.memo(key) if not self._in_tx else None

    def remember(self, key, value) -> None:
        if not self._in_tx:
            self._db.remember(key, value)

    async def _call(self, method: str, sql: str, params):
        observe = self._db.on_query
        if observe is None:
            return await self._call_db(method, sql, params)
        t0 = time.perf_counter()
        try:
            return await self._call_db(method, sql, params)
        finally:
            observe("read" if _pure_read(sql) else "write", time.perf_counter() - t0)

    async def _call_db(self, method: str, sql: str, params):
        args = list(params or [])
        if not _pure_read(sql):
            self._db.changed()
            table = written_table(sql)
            if table:
                self._db._written.add(table)
        try:
            return await getattr(self._db._conn, method)(sql, args)
        except Exception as e:
            if _busy(e) and not _lost_error(self._db, e):
                raise DatabaseUnavailable(f"Database is busy, try again: {e}",
                                          retryable=self._in_tx or _read_only(sql)) from None
            if not _lost_error(self._db, e):
                raise
            # Outside a transaction a read is retried once on a new connection; a write may or may
            # not have been applied and a transaction's earlier statements are gone: fail this one
            # (a transaction's statement before COMMIT left nothing behind: retryable).
            if self._in_tx or not _read_only(sql):
                self._db._lost(e)
                raise DatabaseUnavailable(f"Database connection lost, try again: {e}",
                                          retryable=self._in_tx) from None
            await self._db._reconnect(e)
            return await getattr(self._db._conn, method)(sql, args)

    async def execute(self, sql: str, params: list | tuple | None = None) -> tuple[int, int]:
        """Returns (last_insert_id, rows_affected)."""
        return await self._call("execute", sql, params)

    async def fetch(self, sql: str, params: list | tuple | None = None) -> list[dict[str, Any]]:
        return await self._call("fetch", sql, params)

    async def fetchone(self, sql: str, params: list | tuple | None = None) -> dict[str, Any] | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def query_raw(self, sql: str, params: list | tuple | None = None):
        return await self._call("query_raw", sql, params)


class Database:
    """The global database through this member's gateway (corral.cluster.gateway.Gateway: the dqlite
    node and how to reach the leader's), and the local one."""

    def __init__(self, state_dir: str, local_path: str, gateway):
        self.state_dir = state_dir
        self.local_path = local_path
        self.local: LocalDB | None = None
        self.gateway = gateway
        self._conn = None
        self._lock = asyncio.Lock()
        self.reconnects = 0
        # Bumped by every statement that may write and at the end of every transaction: results
        # memoised at one generation are valid until the next (every statement of this process
        # goes through this object, under its lock; standalone, nothing else writes).
        self.generation = 0
        self._memo: dict = {}
        self._memo_generation = 0
        # Tables written since the last commit, and who hears of them once committed (clustered,
        # the other members reload what they keep in memory of those tables).
        self._written: set[str] = set()
        self.on_commit: list = []
        self.on_query = None   # called with ("read" | "write", seconds) after each statement (metrics)
        self._paused = None      # the timer that ends a pause (a leadership transfer elsewhere)
        self._pause_token = None

    def changed(self) -> None:
        self.generation += 1

    @property
    def node(self):
        return self.gateway.node

    def memo(self, key):
        # Clustered, other members write too: nothing is remembered.
        if self._memo_generation != self.generation or self.gateway.clustered:
            return None
        return self._memo.get(key)

    def remember(self, key, value) -> None:
        if self._memo_generation != self.generation:
            self._memo, self._memo_generation = {}, self.generation
        self._memo[key] = value

    def open_local(self) -> LocalDB:
        if self.local is None:
            self.local = LocalDB(self.local_path)
        return self.local

    async def start(self, migrate: bool = True) -> None:
        """Open the local database, start the embedded dqlite node, apply pending migrations."""
        await self.gateway.start(self.open_local())
        self._conn = await self._connect()
        if migrate:
            await self._migrate()

    async def pause(self, hold: float = 3.0) -> None:
        """Hold still for a leadership transfer: the statement or transaction in flight finishes, no
        new one starts until resume() (or `hold` seconds), so none is cut off half-way by it. A
        pause that can't start within a second, or that a resume overtook, does nothing."""
        if self._paused is not None:
            return
        token = self._pause_token = object()
        try:
            await asyncio.wait_for(self._lock.acquire(), 1.0)
        except TimeoutError:
            return
        if self._pause_token is not token:   # resumed before we got here
            self._lock.release()
            return
        self._paused = asyncio.get_running_loop().call_later(hold, self.resume)

    def resume(self) -> None:
        """After the transfer: the next statement dials the new leader."""
        self._pause_token = None
        if self._paused is None:
            return
        self._paused.cancel()
        self._paused = None
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
        self._lock.release()

    @contextlib.asynccontextmanager
    async def offline(self) -> AsyncIterator[dict]:
        """Stop the node while the body reconfigures the gateway (enabling clustering, joining),
        then start it again: with `box["recover"]` = [(id, address, role)], its raft configuration
        rewritten first. Nothing else reaches the database meanwhile."""
        async with self._lock:
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            await self.gateway.stop()
            self.changed()
            box: dict = {}
            try:
                yield box
            finally:
                await self.gateway.start(self.open_local(), box.get("recover"))
                self._conn = await self._connect()
                self.changed()

    async def _connect(self, attempts: int = 100):
        last = None
        delay = 0.02
        for _ in range(attempts):
            try:
                return await self.gateway.connect()
            except Exception as e:  # the node may need a moment to elect itself (or a new leader)
                last = e
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.1)
        raise RuntimeError(f"cannot connect to the database node: {last}")

    def _lost(self, exc: BaseException | None) -> None:
        """Drop a broken connection; the next use of the database dials a new one."""
        if self._conn is not None:
            log.warning("database connection lost: %s", exc or "not connected")
            self._conn.terminate()
            self._conn = None

    async def _reconnect(self, exc: BaseException | None = None) -> None:
        """Replace a lost connection (the caller holds the lock). Backs off for about 5 s, then 503."""
        self._lost(exc)
        if self.node is None:
            raise DatabaseUnavailable("Database is shut down")
        try:
            self._conn = await self._connect(attempts=50)
        except RuntimeError as e:
            raise DatabaseUnavailable(f"Database unavailable: {e}") from None
        self.reconnects += 1
        log.warning("reconnected to the database node")

    async def _ready(self) -> None:
        if self._conn is None or not self._conn.is_connected:
            await self._reconnect()

    async def apply_patch_file(self, path: str) -> bool:
        """Run and remove a global SQL patch left for the next start (LXD's patch.global.sql, written
        by `corrald cluster edit`)."""
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            return False
        async with self.transaction() as tx:
            for stmt in _split(text):
                await tx.execute(stmt)
        os.unlink(path)
        log.info("applied %s", path)
        return True

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

    async def _begin(self) -> None:
        """BEGIN; clustered, BEGIN IMMEDIATE: the write lock is taken here, so another member's
        transaction in progress shows as "database is locked" now, before the body ran, and we
        wait for it (as LXD's query.Retry does) instead of failing a statement half-way."""
        stmt = "BEGIN IMMEDIATE" if self.gateway.clustered else "BEGIN"
        deadline = asyncio.get_running_loop().time() + BUSY_WAIT
        delay = 0.002
        while True:
            try:
                await self._conn.execute(stmt)
                return
            except Exception as e:   # nothing ran yet: begin again (on a new connection if lost)
                if _lost_error(self, e):
                    await self._reconnect(e)
                elif _busy(e) and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 0.05)
                else:
                    raise

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """BEGIN ... COMMIT (ROLLBACK when the body raises). A connection lost inside fails this
        transaction with a 503; the next one runs on a new connection."""
        async with self._lock:
            await self._ready()
            await self._begin()
            conn = self._conn
            self.changed()
            self._written = set()
            try:
                yield Tx(self, True)
            except BaseException:
                self.changed()
                self._written = set()
                if conn is self._conn:
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                    if not conn.is_connected:
                        self._lost(None)
                raise
            if conn is not self._conn:
                raise DatabaseUnavailable("Database connection lost during the transaction, try again",
                                          retryable=True)
            try:
                await conn.execute("COMMIT")
                self.changed()
            except Exception as e:
                if not (_lost_error(self, e) or isinstance(e, dqliteclient.AmbiguousCommitError)):
                    raise
                self.changed()
                self._lost(e)
                raise DatabaseUnavailable(f"Database connection lost during commit (it may or may not "
                                          f"have been applied): {e}") from None
            committed, self._written = self._written, set()
        await self._committed(committed)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Tx]:
        """Reads (and single autocommit writes) without an explicit transaction."""
        async with self._lock:
            await self._ready()
            self._written = set()
            yield Tx(self, False)
            committed, self._written = self._written, set()
        await self._committed(committed)

    async def _committed(self, tables: set[str]) -> None:
        """After the lock is released: tell the listeners which tables were written."""
        if not tables:
            return
        for hook in self.on_commit:
            try:
                await hook(tables)
            except Exception:  # noqa: BLE001 - stored already; the others catch up later
                log.exception("database: a commit listener failed")

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
        await self.gateway.stop()
        if self.local is not None:
            self.local.close()
            self.local = None
