"""Leader heartbeats, as LXD 5.0's lxd/cluster/heartbeat.go (HeartbeatTask, heartbeat(), APIHeartbeat,
heartbeatRestart) and the PUT /internal/database handler do them.

One task per member (`start()`); it works only while this member is the raft leader:
  - a round every `cluster.offline_threshold / 2` seconds (re-read at every round and at `poke()`,
    so a change takes effect at once; the sleeping loop wakes);
  - per-member requests in parallel, started at offsets i * span / n over the interval
    (span = interval - timeout, so the round fits in its interval), each with a timeout of
    min(2 s, interval); the first round after gaining leadership and restarted rounds are not spread;
  - a member that answered gets its heartbeat recorded (`nodes.heartbeat`), the leader records its own;
  - every payload has every member's id, address, name, raft id and role, last heartbeat and online
    state (last heartbeat within the threshold), the highest schema / API-extension versions, the
    time, and `full_state_list: true`; it is built at each send, so it carries the answers so far;
  - at the end of a round, `ops.after_round(online_ids, offline_ids)` (the role rebalance).
A join announcement reaching the leader during a round (`restart_round()`) runs the round again at
once with a freshly read member list; requests of the stale round not yet started are dropped, so
after the announcement no member is sent the stale list again.

The dependencies are injected (`Heartbeat(ops)`), so this unit-tests without a network:

class HeartbeatOps(Protocol):
    async def is_leader(self) -> bool
    async def members(self) -> list[dict]
        # every member (pending ones excluded), each {"id": int (nodes.id), "name": str,
        # "address": str, "raft_id": int (0: not a raft member), "raft_role": "voter"|"stand-by"|"spare"|"",
        # "last_heartbeat": datetime (UTC), "schema": int, "api_extensions": int}
    async def send(self, member: dict, payload: dict, timeout: float) -> bool
        # PUT /internal/database on that member over the cluster TLS; True on 200
    async def record_heartbeat(self, member_id: int, when: datetime) -> None   # nodes.heartbeat
    def offline_threshold(self) -> float     # cluster.offline_threshold in seconds, read each round
    def self_id(self) -> int                 # this member's nodes.id
    def version(self) -> dict                # this member's {"schema": int, "api_extensions": int}
    async def after_round(self, online_ids: list[int], offline_ids: list[int]) -> None
    async def apply_raft_nodes(self, nodes: list[dict]) -> None
        # receiver side: replace the local raft_nodes with [{"id", "address", "role", "name"}]
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any, Protocol

from corral import timeutil
from corral.cluster import render

log = logging.getLogger(__name__)

DEFAULT_OFFLINE_THRESHOLD = 20.0
SEND_TIMEOUT = 2.0
LEADER_POLL = 1.0            # how often a non-leader checks whether it became the leader
TIME_SKEW = 5.0              # seconds, as LXD's heartbeat handler


class HeartbeatOps(Protocol):
    async def is_leader(self) -> bool: ...
    async def members(self) -> list[dict]: ...
    async def send(self, member: dict, payload: dict, timeout: float) -> bool: ...
    async def record_heartbeat(self, member_id: int, when: datetime) -> None: ...
    def offline_threshold(self) -> float: ...
    def self_id(self) -> int: ...
    def version(self) -> dict: ...
    async def after_round(self, online_ids: list[int], offline_ids: list[int]) -> None: ...
    async def apply_raft_nodes(self, nodes: list[dict]) -> None: ...


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def fmt_time(dt: datetime | None) -> str:
    """RFC 3339 in UTC, as Go's time.Time marshals (the zero time when there is none)."""
    if dt is None:
        return timeutil.ZERO
    return _aware(dt).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def online(last_heartbeat: datetime | str | None, threshold: float, now: datetime | None = None) -> bool:
    """A member is online while its last heartbeat is younger than the threshold (render.online)."""
    return render.online(last_heartbeat, threshold, _aware(now) if now is not None else utcnow())




class Heartbeat:
    def __init__(self, ops: HeartbeatOps):
        self.ops = ops
        # Counters, for tests and the bench: completed rounds, requests sent (and failed), payloads
        # received, rounds run again for a join announcement, announcements sent.
        self.rounds = 0
        self.last_round: float | None = None   # seconds the last completed round took
        self.sent = 0
        self.failed = 0
        self.received = 0
        self.restarts = 0
        self.announced = 0
        self.holding = False                 # a round is blocked at the test hold right now
        self.last_received: datetime | None = None     # when the last heartbeat reached this member
        self.last_payload: dict | None = None
        self.time_skew = False               # the last heartbeat's time was > 5 s off ours
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._released = asyncio.Event()
        self._released.set()
        self._restart = asyncio.Event()
        self._in_round = False
        self._round_lock = asyncio.Lock()    # one round at a time (the loop's, or a direct run_round)
        self._was_leader = False

    # -- timing --------------------------------------------------------------------------------

    def threshold(self) -> float:
        t = float(self.ops.offline_threshold())
        return t if t > 0 else DEFAULT_OFFLINE_THRESHOLD

    def interval(self) -> float:
        return self.threshold() / 2

    def poke(self) -> None:
        """The threshold changed (or leadership did): re-read the interval now."""
        self._wake.set()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="cluster-heartbeat")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    def hold(self, on: bool) -> None:
        """Test hook: while held, a round blocks after reading its member list, before sending."""
        if on:
            self._released.clear()
        else:
            self._released.set()

    def restart_round(self) -> bool:
        """A join announcement arrived: if a round is in progress, run it again at once after it,
        with a fresh member list. False when no round was in progress (nothing stale to redo)."""
        if not self._in_round:
            return False
        log.info("Restarting heartbeat round")
        self._restart.set()
        return True

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            leader = False
            try:
                leader = await self.ops.is_leader()
            except Exception as e:               # noqa: BLE001 (a leader change in progress)
                log.debug("Heartbeat: leadership unknown: %s", e)
            if leader:
                initial, self._was_leader = not self._was_leader, True
                try:
                    await self.run_round(spread=not initial)
                except asyncio.CancelledError:
                    raise
                except Exception:                # noqa: BLE001 (one bad round must not end the task)
                    log.warning("Heartbeat round failed", exc_info=True)
            else:
                self._was_leader = False
            while True:                          # sleep to the next round; poke() re-reads the interval
                period = self.interval() if leader else min(self.interval(), LEADER_POLL)
                delay = period - (loop.time() - began)
                if delay <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    break

    # -- one round (leader) --------------------------------------------------------------------

    async def run_round(self, spread: bool = True) -> None:
        """One heartbeat round (run again while join announcements ask for it)."""
        async with self._round_lock:
            await self._run_round(spread)

    async def _run_round(self, spread: bool) -> None:
        loop = asyncio.get_running_loop()
        self._in_round = True
        try:
            while True:
                self._restart.clear()
                members = await self.ops.members()
                threshold = self.threshold()
                await self._hold_point()
                began = loop.time()
                # A join announcement (restart_round) at any point below makes this pass stale:
                # the requests not yet started are dropped and the round runs again.
                state = {} if self._restart.is_set() else await self._send_all(members, threshold, spread)
                if not self._restart.is_set():
                    self.rounds += 1
                    now = utcnow()
                    up = sorted(i for i, m in state.items() if online(m["last_heartbeat"], threshold, now))
                    down = sorted(i for i in state if i not in up)
                    try:
                        await self.ops.after_round(up, down)
                    except Exception:            # noqa: BLE001
                        log.warning("Heartbeat: after-round hook failed", exc_info=True)
                if not self._restart.is_set():
                    took = self.last_round = loop.time() - began
                    if took > threshold / 2:
                        log.warning("Heartbeat round took %.1fs, longer than the interval (%.1fs)",
                                    took, threshold / 2)
                    return
                self.restarts += 1
                spread = False
        finally:
            self._in_round = False

    async def _hold_point(self) -> None:
        if self._released.is_set():
            return
        self.holding = True
        try:
            await self._released.wait()
        finally:
            self.holding = False

    @staticmethod
    def _state(members: list[dict], threshold: float) -> dict[int, dict[str, Any]]:
        now = utcnow()
        state = {}
        for m in members:
            last = m.get("last_heartbeat")
            last = timeutil.parse(last) if isinstance(last, str) else last
            state[int(m["id"])] = {
                "id": int(m["id"]), "address": m.get("address", ""), "name": m.get("name", ""),
                "raft_id": int(m.get("raft_id") or 0), "raft_role": m.get("raft_role") or "",
                "last_heartbeat": last, "online": online(last, threshold, now),
            }
        return state

    def _version(self, members: list[dict]) -> dict[str, int]:
        own = self.ops.version()
        return {k: max([int(own.get(k, 0))] + [int(m.get(k) or 0) for m in members])
                for k in ("schema", "api_extensions")}

    @staticmethod
    def payload(state: dict[int, dict[str, Any]], version: dict, full: bool = True) -> dict:
        """LXD's APIHeartbeat, in Corral's field names."""
        return {
            "members": {i: {**m, "last_heartbeat": fmt_time(m["last_heartbeat"])} for i, m in state.items()},
            "version": dict(version),
            "time": fmt_time(utcnow()),
            "full_state_list": full,
        }

    async def _record(self, member_id: int, when: datetime) -> None:
        try:
            await self.ops.record_heartbeat(member_id, when)
        except Exception as e:                   # noqa: BLE001 (the database may be changing leader)
            log.warning("Heartbeat: failed recording the heartbeat of member %s: %s", member_id, e)

    async def _send_all(self, members: list[dict], threshold: float, spread: bool) -> dict[int, dict]:
        me = self.ops.self_id()
        state = self._state(members, threshold)
        version = self._version(members)
        interval = threshold / 2
        timeout = min(SEND_TIMEOUT, interval)
        if me in state:
            now = utcnow()
            state[me].update(last_heartbeat=now, online=True)
            await self._record(me, now)
        others = [m for m in members if int(m["id"]) != me]
        span = max(0.0, interval - timeout) if spread else 0.0
        tasks = [asyncio.create_task(self._send_one(m, i * span / len(others), timeout, state, version))
                 for i, m in enumerate(others)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return state

    async def _send_one(self, member: dict, offset: float, timeout: float, state: dict, version: dict) -> None:
        if offset > 0:
            try:
                await asyncio.wait_for(self._restart.wait(), offset)
            except TimeoutError:
                pass
        if self._restart.is_set():
            return                               # the fresh round sends this member the fresh list
        mid = int(member["id"])
        ok = await self._deliver(member, self.payload(state, version), timeout)
        if not ok:
            self.failed += 1
            return
        when = utcnow()
        state[mid].update(last_heartbeat=when, online=True)
        await self._record(mid, when)

    async def _deliver(self, member: dict, payload: dict, timeout: float, count: bool = True) -> bool:
        if count:
            self.sent += 1
        try:
            return bool(await asyncio.wait_for(self.ops.send(member, payload, timeout), timeout))
        except TimeoutError:
            log.debug("Heartbeat to %s timed out", member.get("address"))
        except Exception as e:                   # noqa: BLE001 (whatever the network does)
            log.debug("Heartbeat to %s failed: %s", member.get("address"), e)
        return False

    # -- a joining member ----------------------------------------------------------------------

    async def announce(self) -> dict[int, bool]:
        """A member that has just joined announces itself: a heartbeat with the member list as it
        reads it now, sent to every other member in parallel (the leader then runs its round again)."""
        members = await self.ops.members()
        threshold = self.threshold()
        state = self._state(members, threshold)
        version = self._version(members)
        timeout = min(SEND_TIMEOUT, threshold / 2)
        me = self.ops.self_id()
        others = [m for m in members if int(m["id"]) != me]
        data = self.payload(state, version)
        results = await asyncio.gather(*(self._deliver(m, data, timeout, count=False) for m in others))
        self.announced += len(others)
        return {int(m["id"]): ok for m, ok in zip(others, results)}

    # -- receiver side (PUT /internal/database) ------------------------------------------------

    async def receive(self, payload: dict) -> None:
        """A heartbeat reached this member: keep the local raft_nodes current. ValueError (the
        handler's 400) for a payload without raft members, as LXD's handler."""
        self.received += 1
        members = payload.get("members") if isinstance(payload, dict) else None
        if not isinstance(members, dict):
            raise ValueError("Invalid heartbeat: no member list")
        nodes = []
        for m in members.values():
            try:
                raft_id = int(m.get("raft_id") or 0)
            except (AttributeError, TypeError, ValueError):
                raise ValueError("Invalid heartbeat member") from None
            if raft_id > 0:
                nodes.append({"id": raft_id, "address": m.get("address", ""),
                              "role": m.get("raft_role") or "", "name": m.get("name", "")})
        if not nodes:
            raise ValueError("Empty raft member set received")
        await self.ops.apply_raft_nodes(sorted(nodes, key=lambda n: n["id"]))
        now = utcnow()
        self.last_received, self.last_payload = now, payload
        try:
            sent_at = timeutil.parse(str(payload.get("time", "")))
            self.time_skew = abs((sent_at - now).total_seconds()) > TIME_SKEW
        except ValueError:
            pass
        try:
            leader = await self.ops.is_leader()
        except Exception:                        # noqa: BLE001 (a leader change in progress)
            leader = False
        if leader:
            self.restart_round()     # another member's view reached the leader: a join announcement
