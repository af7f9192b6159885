"""Reads memoised against the database's write generation (issue 11: listings and per-launch
checks re-decoded every instance row). A memo is valid until the next statement that may write
or the end of any transaction, and is never read or filled inside a transaction."""
import asyncio
import types

from corral.db import Database
from corral.db.queries import instances as qi


class CountingConn:
    """Answers the four queries of queries.instances.get_all with one instance row."""

    def __init__(self):
        self.log, self.is_connected = [], True

    async def execute(self, sql, args=None):
        self.log.append(sql)
        return 0, 1

    async def fetch(self, sql, args):
        self.log.append(sql)
        if sql.startswith("SELECT i.id AS id"):
            return [{"id": 1, "project": "default", "name": "c1", "node": None, "type": 0, "architecture": 2,
                     "ephemeral": 0, "stateful": 0, "description": "", "created_at": "2026-01-01T00:00:00Z",
                     "last_used_at": "2026-01-01T00:00:00Z", "config_json": '{"limits.cpu": "1"}',
                     "devices_json": "[]", "profiles_json": '[[0, 1, "default"]]'}]
        if "instances_config" in sql:
            return [{"owner": 1, "map": '{"limits.cpu": "1"}'}]
        if "instances_profiles" in sql:
            return [{"owner": 1, "name": "default"}]
        return []


def make_db():
    # A standalone member's gateway as the database sees it (a node, not clustered).
    db = Database("/nonexistent", "/nonexistent", types.SimpleNamespace(node=object(), clustered=False))
    db._conn = CountingConn()
    return db


def selects(db):
    return sum(1 for s in db._conn.log if s.startswith("SELECT i.id AS id"))


def test_get_all_is_read_once_until_a_write():
    async def main():
        db = make_db()
        async with db.session() as tx:
            first = await qi.get_all(tx)
            again = await qi.get_all(tx)
        assert first == again and selects(db) == 1
        async with db.session() as tx:
            await tx.execute("UPDATE instances SET description = 'x'")
            await qi.get_all(tx)
        assert selects(db) == 2
        async with db.session() as tx:   # a WITH statement may write too
            await tx.execute("WITH x AS (SELECT 1) DELETE FROM instances")
            await qi.get_all(tx)
        assert selects(db) == 3
    asyncio.run(main())


def test_callers_get_copies_they_may_change():
    async def main():
        db = make_db()
        async with db.session() as tx:
            rows = await qi.get_all(tx)
            rows[0]["config"]["limits.cpu"] = "8"
            rows[0]["profiles"].append("other")
            again = await qi.get_all(tx)
            one = await qi.get(tx, "default", "c1")   # served from the memo too
            missing = await qi.get(tx, "default", "nope")
        assert again[0]["config"] == {"limits.cpu": "1"} and again[0]["profiles"] == ["default"]
        assert one == again[0] and missing is None and selects(db) == 1
    asyncio.run(main())


def test_transactions_neither_use_nor_fill_the_memo_and_end_it():
    async def main():
        db = make_db()
        async with db.session() as tx:
            await qi.get_all(tx)
        async with db.transaction() as tx:
            await qi.get_all(tx)             # inside: read afresh (it may see its own writes)
        assert selects(db) == 2
        async with db.session() as tx:
            await qi.get_all(tx)             # the transaction ended: the memo is gone
        assert selects(db) == 3
        try:
            async with db.transaction() as tx:
                await qi.get_all(tx)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        async with db.session() as tx:
            await qi.get_all(tx)
        assert selects(db) == 5
    asyncio.run(main())
