"""Per-object locks for the update discipline (read current -> If-Match -> validate -> apply -> commit).

Every PUT/PATCH of one object runs under the lock of that object, keyed by (kind, project, name), so
the ETag comparison, the merge of a PATCH onto the latest stored state, the host side effects and the
database write are one step as far as any other update of the same object is concerned.

    async with LOCKS.hold("profile", project, name):
        ...

`acquire()` returns a `Held` whose `release()` may be called once from anywhere (another task, an
operation's finish callback): an instance PUT takes the lock in the request, answers 412 there, and
hands the held lock to the operation that does the work.

Locks exist only while someone holds or waits for them, so the registry does not grow with every
name ever used and no lock outlives the event loop it was made on.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Hashable


class Held:
    """One acquisition of a keyed lock; release() is idempotent."""

    def __init__(self, owner: "KeyedLocks", key: Hashable, lock: asyncio.Lock):
        self._owner, self._key, self._lock = owner, key, lock
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._lock.release()
        self._owner._drop(self._key)


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._users: dict[Hashable, int] = {}

    def _drop(self, key: Hashable) -> None:
        self._users[key] -= 1
        if self._users[key] == 0:
            del self._users[key]
            del self._locks[key]

    async def acquire(self, *key: Hashable) -> Held:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            await lock.acquire()
        except BaseException:
            self._drop(key)
            raise
        return Held(self, key, lock)

    @contextlib.asynccontextmanager
    async def hold(self, *key: Hashable) -> AsyncIterator[None]:
        held = await self.acquire(*key)
        try:
            yield
        finally:
            held.release()

    def locked(self, *key: Hashable) -> bool:
        lock = self._locks.get(key)
        return lock is not None and lock.locked()


# The daemon's registry. Keys: ("server",), ("profile", project, name), ("project", name),
# ("volume", pool, project, name), ("instance", project, name); networks and pools keep their own
# per-name locks (corral/network/networks.py, corral/storage/pools.py), held the same way.
LOCKS = KeyedLocks()
