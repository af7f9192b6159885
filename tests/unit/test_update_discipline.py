"""The pieces of the update discipline without a daemon: keyed locks, handing a lock to an operation,
server-config watchers undone when a later one fails (nothing stored)."""
import asyncio
import contextlib

import pytest

from corral.errors import BadRequest
from corral.events import EventHub
from corral.locks import KeyedLocks
from corral.operations import OperationManager
from corral.serverconfig import ServerConfig


async def test_keyed_locks_serialise_one_key_and_are_dropped():
    locks = KeyedLocks()
    order = []

    async def worker(tag, key):
        async with locks.hold(*key):
            order.append(("in", tag))
            await asyncio.sleep(0.01)
            order.append(("out", tag))

    await asyncio.gather(worker("a", ("profile", "default", "p")), worker("b", ("profile", "default", "p")))
    assert order in ([("in", "a"), ("out", "a"), ("in", "b"), ("out", "b")],
                     [("in", "b"), ("out", "b"), ("in", "a"), ("out", "a")])
    # different keys do not wait for each other
    held = await locks.acquire("x")
    await asyncio.wait_for(locks.acquire("y"), 1)
    held.release()
    held.release()   # idempotent
    assert not locks.locked("x")
    assert "x" not in locks._locks   # no registry growth once nobody holds or waits


async def test_cancelled_waiter_does_not_leak_the_lock():
    locks = KeyedLocks()
    held = await locks.acquire("k")
    waiter = asyncio.ensure_future(locks.acquire("k"))
    await asyncio.sleep(0)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    held.release()
    assert locks._locks == {} and locks._users == {}


async def test_operation_on_finish_runs_even_when_cancelled_before_running():
    mgr = OperationManager(EventHub())
    calls = []

    async def slow(op):
        await asyncio.sleep(60)

    op = mgr.create(description="Slow", run=slow, cancellable=True)
    op.on_finish(lambda: calls.append("done"))
    op.cancel()          # before the task got to run
    await op.wait(5)
    assert op.status == "Cancelled" and calls == ["done"]
    op.on_finish(lambda: calls.append("late"))   # already finished: called at once
    assert calls == ["done", "late"]


class _FakeTx:
    def __init__(self, log):
        self.log = log

    async def execute(self, sql, params=None):
        self.log.append((sql, params))
        return 0, 1

    async def fetch(self, sql, params=None):
        return []


class _FakeLocal:
    def __init__(self):
        self.config, self.writes = {}, []

    def get_config(self):
        return dict(self.config)

    def set_config(self, changes):
        self.writes.append(changes)


class _FakeDB:
    def __init__(self):
        self.writes = []
        self.local = _FakeLocal()

    @contextlib.asynccontextmanager
    async def transaction(self):
        yield _FakeTx(self.writes)

    session = transaction


async def test_server_config_failed_watcher_undoes_earlier_ones_and_stores_nothing():
    db = _FakeDB()
    cfg = ServerConfig(db)
    seen = []

    async def first(changes):
        seen.append(dict(changes))

    async def second(changes):
        raise OSError("Address already in use")

    cfg.watchers += [first, second]
    with pytest.raises(BadRequest, match="Failed to apply core.https_address, user.x: Address already in use"):
        await cfg.update({"core.https_address": "127.0.0.1:1", "user.x": "1"}, replace=False)
    assert seen == [{"core.https_address": "127.0.0.1:1", "user.x": "1"}, {"core.https_address": "", "user.x": ""}]
    assert db.writes == [] and db.local.writes == []
    assert cfg.all() == {}


async def test_server_config_etag_checked_before_anything():
    db = _FakeDB()
    cfg = ServerConfig(db)

    def stale(current):
        raise BadRequest("stale")

    with pytest.raises(BadRequest, match="stale"):
        await cfg.update({"user.x": "1"}, replace=False, etag_check=stale)
    assert db.writes == []
