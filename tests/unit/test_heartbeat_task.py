"""Leader heartbeats (corral/cluster/heartbeat.py) over a fake ops: only the leader sends, the interval
follows cluster.offline_threshold live, requests are spread and time out, answers are recorded, a join
announcement during a (held) round makes every member get the fresh list, the receiver side, stop()."""
import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from corral import timeutil
from corral.cluster import heartbeat
from corral.config import server as server_keys
from corral.cluster.heartbeat import Heartbeat, online


def _member(i, last=None, schema=70, api=300):
    return {"id": i, "name": f"m{i}", "address": f"10.0.0.{i}:8443", "raft_id": i,
            "raft_role": "voter" if i <= 3 else "stand-by" if i <= 5 else "spare",
            "last_heartbeat": last or datetime.now(timezone.utc), "schema": schema, "api_extensions": api}


class FakeOps:
    def __init__(self, n=3, threshold=2.0, leader=True, me=1):
        self.leader, self.me, self.thr = leader, me, threshold
        self.list = [_member(i) for i in range(1, n + 1)]
        self.sends = []            # (loop time, member id, payload, timeout)
        self.recorded = []         # (member id, when)
        self.rounds = []           # (loop time, online ids, offline ids)
        self.fail, self.hang, self.boom = set(), set(), set()
        self.raft_nodes = None
        self.record_fails = False
        self.after_fails = False

    async def is_leader(self):
        return self.leader

    async def members(self):
        return [dict(m) for m in self.list]

    async def send(self, member, payload, timeout):
        self.sends.append((asyncio.get_running_loop().time(), member["id"], payload, timeout))
        if member["id"] in self.hang:
            await asyncio.sleep(3600)
        if member["id"] in self.boom:
            raise ConnectionRefusedError("refused")
        return member["id"] not in self.fail

    async def record_heartbeat(self, member_id, when):
        if self.record_fails:
            raise RuntimeError("database is changing leader")
        self.recorded.append((member_id, when))

    def offline_threshold(self):
        return self.thr

    def self_id(self):
        return self.me

    def version(self):
        return {"schema": 70, "api_extensions": 300}

    async def after_round(self, online_ids, offline_ids):
        self.rounds.append((asyncio.get_running_loop().time(), online_ids, offline_ids))
        if self.after_fails:
            raise RuntimeError("rebalance failed")

    async def apply_raft_nodes(self, nodes):
        self.raft_nodes = nodes


async def until(cond, timeout=3.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def running():
    started = []

    def make(ops):
        hb = Heartbeat(ops)
        hb.start()
        started.append(hb)
        return hb
    yield make
    for hb in started:
        await hb.stop()


def ids_in(payload):
    return sorted(m["id"] for m in payload["members"].values())


async def test_only_the_leader_sends(running):
    ops = FakeOps(n=3, threshold=0.6, leader=False)
    hb = running(ops)
    await asyncio.sleep(0.4)
    assert ops.sends == [] and hb.rounds == 0 and ops.recorded == []
    ops.leader = True
    hb.poke()
    await until(lambda: hb.rounds >= 1, 1.0)
    assert sorted(i for _, i, _, _ in ops.sends) == [2, 3]        # not itself
    assert {i for i, _ in ops.recorded} == {1, 2, 3}              # itself recorded directly
    ops.leader = False
    await asyncio.sleep(0.35)                                       # a lost leadership stops the rounds
    n = len(ops.sends)
    await asyncio.sleep(0.4)
    assert len(ops.sends) == n


async def test_interval_follows_the_threshold_live(running):
    ops = FakeOps(n=2, threshold=8.0)                               # interval 4 s
    hb = running(ops)
    await until(lambda: hb.rounds == 1)
    assert hb.interval() == 4.0
    await asyncio.sleep(0.2)
    assert hb.rounds == 1                                           # sleeping towards the next round
    ops.thr = 0.4                                                   # interval 0.2 s, effective at once
    hb.poke()
    await until(lambda: hb.rounds >= 4, 1.5)
    gaps = [b[0] - a[0] for a, b in zip(ops.rounds[1:], ops.rounds[2:])]
    assert all(0.15 < g < 0.4 for g in gaps), gaps
    # Re-read at every round even without poke(): a 0.4 s interval.
    ops.thr = 0.8
    await asyncio.sleep(0.25)
    mark = len(ops.rounds)
    await until(lambda: len(ops.rounds) >= mark + 2, 2.0)
    gap = ops.rounds[mark + 1][0] - ops.rounds[mark][0]
    assert 0.33 < gap < 0.5, gap


async def test_rounds_repeat_every_interval(running):
    ops = FakeOps(n=3, threshold=0.6)                               # interval 0.3 s
    hb = running(ops)
    await asyncio.sleep(0.75)
    assert hb.rounds == 3                                           # at 0, 0.3, 0.6
    per_member = [sum(1 for _, i, _, _ in ops.sends if i == m) for m in (2, 3)]
    assert per_member == [3, 3]
    assert hb.sent == 6 and hb.failed == 0


async def test_requests_are_spread_over_the_interval_with_a_timeout():
    ops = FakeOps(n=5, threshold=6.0)                               # interval 3, timeout 2, span 1
    hb = Heartbeat(ops)
    t0 = asyncio.get_running_loop().time()
    await hb.run_round(spread=True)
    offsets = sorted((t - t0, i) for t, i, _, _ in ops.sends)
    assert [i for _, i in offsets] == [2, 3, 4, 5]
    for (off, _), want in zip(offsets, [0.0, 0.25, 0.5, 0.75]):
        assert want - 0.02 <= off < want + 0.1, offsets
    assert {t for _, _, _, t in ops.sends} == {2.0}
    # An unspread round (first as leader, restarted) sends at once; a small interval caps the timeout.
    ops.sends.clear()
    ops.thr = 1.0
    t0 = asyncio.get_running_loop().time()
    await hb.run_round(spread=True)
    assert all(t - t0 < 0.05 for t, _, _, _ in ops.sends)
    assert {t for _, _, _, t in ops.sends} == {0.5}


async def test_a_hanging_or_failing_member_is_not_recorded():
    old = datetime.now(timezone.utc) - timedelta(seconds=60)
    ops = FakeOps(n=5, threshold=1.0)                               # timeout 0.5 s
    for m in ops.list[1:]:
        m["last_heartbeat"] = old
    ops.hang, ops.fail, ops.boom = {2}, {3}, {4}
    hb = Heartbeat(ops)
    t0 = asyncio.get_running_loop().time()
    await hb.run_round()
    took = asyncio.get_running_loop().time() - t0
    assert 0.48 < took < 0.8, took                                   # the hanging one cut at the timeout
    assert sorted(i for i, _ in ops.recorded) == [1, 5]
    assert hb.sent == 4 and hb.failed == 3
    _, up, down = ops.rounds[-1]
    assert up == [1, 5] and down == [2, 3, 4]


async def test_the_payload():
    now = datetime.now(timezone.utc)
    ops = FakeOps(n=4, threshold=6.0)
    ops.list[1]["last_heartbeat"] = now - timedelta(seconds=30)     # member 2 offline
    ops.list[3]["schema"], ops.list[3]["api_extensions"] = 71, 305
    ops.list[3]["raft_id"], ops.list[3]["raft_role"] = 0, ""        # not a raft member
    hb = Heartbeat(ops)
    await hb.run_round(spread=True)
    by_target = {i: p for _, i, p, _ in ops.sends}
    first = by_target[2]
    assert first["full_state_list"] is True
    assert first["version"] == {"schema": 71, "api_extensions": 305}
    assert abs((timeutil.parse(first["time"]) - now).total_seconds()) < 2
    m2 = first["members"][2]
    assert set(m2) == {"id", "address", "name", "raft_id", "raft_role", "last_heartbeat", "online"}
    assert (m2["id"], m2["name"], m2["address"], m2["raft_id"], m2["raft_role"]) == \
        (2, "m2", "10.0.0.2:8443", 2, "voter")
    assert m2["online"] is False and first["members"][1]["online"] is True
    assert first["members"][4]["raft_id"] == 0
    # Built at each send: later requests carry the answers so far (member 2 answered first).
    last = by_target[4]
    assert last["members"][2]["online"] is True
    assert timeutil.parse(last["members"][2]["last_heartbeat"]) > now


async def test_a_join_during_a_held_round_reaches_every_member(running):
    ops = FakeOps(n=3, threshold=0.6)
    hb = running(ops)
    await until(lambda: hb.rounds == 1)
    hb.hold(True)
    await until(lambda: hb.holding, 2.0)                            # the next round read [1, 2, 3]
    sent_before = len(ops.sends)
    ops.list.append(_member(4))                                     # member 4 joins ...
    announcement = Heartbeat.payload(Heartbeat._state(ops.list, 2.0), {"schema": 70, "api_extensions": 300})
    await hb.receive(announcement)                                  # ... and announces itself to the leader
    assert ops.raft_nodes and [n["id"] for n in ops.raft_nodes] == [1, 2, 3, 4]
    hb.hold(False)
    await until(lambda: hb.rounds == 2)
    fresh = ops.sends[sent_before:]
    assert sorted(i for _, i, _, _ in fresh) == [2, 3, 4]            # the new member included
    assert all(ids_in(p) == [1, 2, 3, 4] for _, _, p, _ in fresh)    # nobody got the stale list
    assert hb.restarts == 1


async def test_without_the_restart_the_held_round_sends_the_stale_list():
    # The race the restart is for: the list read before the join goes out after it.
    ops = FakeOps(n=3, threshold=2.0)
    hb = Heartbeat(ops)
    hb.hold(True)
    task = asyncio.create_task(hb.run_round())
    await until(lambda: hb.holding)
    ops.list.append(_member(4))
    hb.hold(False)
    await task
    assert sorted(i for _, i, _, _ in ops.sends) == [2, 3]
    assert all(ids_in(p) == [1, 2, 3] for _, _, p, _ in ops.sends)


async def test_a_join_during_the_sends_drops_the_stale_requests_not_yet_started():
    ops = FakeOps(n=5, threshold=6.0)                               # offsets 0, .25, .5, .75
    hb = Heartbeat(ops)
    task = asyncio.create_task(hb.run_round(spread=True))
    await until(lambda: len(ops.sends) == 2)
    ops.list.append(_member(6))
    assert hb.restart_round() is True
    await task
    stale = [(i, p) for _, i, p, _ in ops.sends if 6 not in [m["id"] for m in p["members"].values()]]
    assert sorted(i for i, _ in stale) == [2, 3]                    # only those already sent
    fresh = [i for _, i, p, _ in ops.sends if ids_in(p) == [1, 2, 3, 4, 5, 6]]
    assert sorted(fresh) == [2, 3, 4, 5, 6]                         # then everybody, at once
    assert hb.rounds == 1 and hb.restarts == 1
    assert len(ops.rounds) == 1 and ops.rounds[0][1] == [1, 2, 3, 4, 5, 6]


async def test_restart_round_outside_a_round_does_nothing():
    ops = FakeOps(n=2)
    hb = Heartbeat(ops)
    assert hb.restart_round() is False
    await hb.run_round()
    assert hb.rounds == 1 and hb.restarts == 0


async def test_receive_keeps_raft_nodes_current():
    ops = FakeOps(n=4, leader=False)
    ops.list[3]["raft_id"] = 0
    hb = Heartbeat(ops)
    payload = Heartbeat.payload(Heartbeat._state(ops.list, 2.0), {"schema": 70, "api_extensions": 300})
    await hb.receive(payload)
    assert ops.raft_nodes == [{"id": i, "address": f"10.0.0.{i}:8443", "role": "voter", "name": f"m{i}"}
                              for i in (1, 2, 3)]
    assert hb.received == 1 and hb.last_payload is payload and hb.last_received is not None
    assert hb.time_skew is False and hb.restarts == 0
    skewed = dict(payload, time=heartbeat.fmt_time(datetime.now(timezone.utc) - timedelta(seconds=30)))
    await hb.receive(skewed)
    assert hb.time_skew is True
    with pytest.raises(ValueError, match="Empty raft member set received"):
        await hb.receive({"members": {4: dict(payload["members"][4])}})
    with pytest.raises(ValueError):
        await hb.receive({"nothing": 1})
    assert hb.received == 4

    async def unknown():
        raise ConnectionError("no leader")
    ops.is_leader = unknown                                         # leadership unknown: just applied
    await hb.receive(payload)
    assert hb.received == 5 and hb.restarts == 0


async def test_record_and_hook_failures_do_not_end_the_task(running):
    ops = FakeOps(n=2, threshold=0.4)
    ops.record_fails = ops.after_fails = True
    hb = running(ops)
    await until(lambda: hb.rounds >= 3, 2.0)
    assert ops.recorded == []


async def test_stop_is_clean(running):
    ops = FakeOps(n=3, threshold=4.0)
    ops.hang = {2, 3}
    hb = Heartbeat(ops)
    await hb.stop()                                                 # never started: nothing to do
    hb.start()
    await until(lambda: len(ops.sends) == 2)                        # both requests in flight
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await hb.stop()
    assert loop.time() - t0 < 0.2
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    # ... and while held.
    hb2 = Heartbeat(FakeOps(n=2))
    hb2.hold(True)
    hb2.start()
    await until(lambda: hb2.holding)
    await hb2.stop()
    assert hb2.holding is False
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_announce_reaches_every_other_member():
    ops = FakeOps(n=4, me=4, leader=False)
    ops.fail = {2}
    hb = Heartbeat(ops)
    assert await hb.announce() == {1: True, 2: False, 3: True}
    assert all(ids_in(p) == [1, 2, 3, 4] and p["full_state_list"] for _, _, p, _ in ops.sends)
    assert hb.announced == 3 and hb.sent == 0 and hb.rounds == 0 and ops.recorded == []


def test_online():
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert online(now - timedelta(seconds=19.9), 20, now)
    assert not online(now - timedelta(seconds=20), 20, now)         # offline at the threshold itself
    assert not online(now - timedelta(seconds=20.1), 20, now)
    assert not online(None, 20, now)
    assert online(datetime(2024, 5, 1, 11, 59, 59), 2, now)        # naive = UTC
    assert online("2024-05-01T11:59:59.5Z", 2, now)
    assert not online(timeutil.ZERO, 2, now)


@pytest.mark.parametrize("value,want", [("2", 2), ("20", 20), ("11", 11), ("+3", 3)])
def test_validate_offline_threshold_accepts(value, want):
    assert server_keys.validate_offline_threshold(value) == want


@pytest.mark.parametrize("value,message", [
    ("1", "Value must be greater than '1'"), ("0", "Value must be greater than '1'"),
    ("-5", "Value must be greater than '1'"),
    ("abc", "Offline threshold is not a number"), ("2.5", "Offline threshold is not a number"),
    ("", "Offline threshold is not a number"),
])
def test_validate_offline_threshold_refuses(value, message):
    with pytest.raises(ValueError) as e:
        server_keys.validate_offline_threshold(value)
    assert str(e.value) == message
