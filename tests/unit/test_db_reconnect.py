"""The database client replaces a lost dqlite connection by itself (issue 9: after a flood every
request failed with "Not connected" until a restart). The real loss is in
tests/security/test_flood.py; here the transaction rules, on a scripted connection."""
import asyncio

import dqliteclient
import types

import pytest

from corral.db import Database, DatabaseUnavailable


class FakeConn:
    def __init__(self, n, fail_on=None):
        self.n, self.fail_on, self.log, self.is_connected = n, fail_on, [], True

    async def execute(self, sql, args=None):
        return await self._run(sql, (0, 1))

    async def fetch(self, sql, args):
        return await self._run(sql, [{"conn": self.n}])

    async def _run(self, sql, result):
        self.log.append(sql)
        if not self.is_connected:
            raise dqliteclient.DqliteConnectionError("Not connected")
        if self.fail_on and self.fail_on in sql:
            self.is_connected = False
            raise dqliteclient.DqliteConnectionError("Connection lost")
        return result

    def terminate(self):
        self.is_connected = False


def make_db(first_fail_on):
    # A standalone member's gateway as the database sees it (a node, not clustered).
    db = Database("/nonexistent", "/nonexistent", types.SimpleNamespace(node=object(), clustered=False))
    made = []

    async def connect(attempts=100):
        made.append(FakeConn(len(made) + 1))
        return made[-1]

    db._connect = connect
    db._conn = FakeConn(0, first_fail_on)
    return db, made


def test_lost_inside_a_transaction_fails_it_and_the_next_one_reconnects():
    async def main():
        db, made = make_db("UPDATE")
        first = db._conn
        with pytest.raises(DatabaseUnavailable) as e:
            async with db.transaction() as tx:
                await tx.execute("UPDATE t SET a = 1")
                await tx.execute("UPDATE t SET b = 2")      # never runs
        assert e.value.status == 503
        assert first.log == ["BEGIN", "UPDATE t SET a = 1"]   # no COMMIT of half a transaction
        async with db.transaction() as tx:
            assert await tx.fetch("SELECT 1") == [{"conn": 1}]
        assert made[0].log == ["BEGIN", "SELECT 1", "COMMIT"] and db.reconnects == 1
    asyncio.run(main())


def test_reads_outside_a_transaction_are_retried_once_writes_are_not():
    async def main():
        db, made = make_db("SELECT")
        async with db.session() as tx:
            assert await tx.fetch("SELECT x") == [{"conn": 1}]     # retried on a new connection
        db._conn.fail_on = "INSERT"
        async with db.session() as tx:
            with pytest.raises(DatabaseUnavailable):
                await tx.execute("INSERT INTO t VALUES (1)")     # may have been applied: not repeated
        assert made[0].log == ["SELECT x", "INSERT INTO t VALUES (1)"]
        async with db.session() as tx:
            await tx.execute("INSERT INTO t VALUES (2)")
        assert made[1].log == ["INSERT INTO t VALUES (2)"] and db.reconnects == 2
    asyncio.run(main())


def test_a_dead_connection_is_replaced_before_use():
    async def main():
        db, made = make_db(None)
        db._conn.is_connected = False     # e.g. a cancelled request dropped it
        async with db.transaction() as tx:
            await tx.execute("UPDATE t SET a = 1")
        assert made[0].log == ["BEGIN", "UPDATE t SET a = 1", "COMMIT"]
    asyncio.run(main())
