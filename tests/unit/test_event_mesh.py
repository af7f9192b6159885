"""The event hub's local / remote listeners and the event mesh's bookkeeping (corral/events.py,
corral/cluster/event_mesh.py), with a fake cluster and a fake subscription: no network."""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from corral.cluster import event_mesh
from corral.cluster.event_mesh import EventMesh
from corral.events import EventHub


def peer_event(location: str, source: str = "/1.0/profiles/p") -> dict:
    return {"type": "lifecycle", "timestamp": "2024-01-01T00:00:00Z", "location": location,
            "project": "default", "metadata": {"action": "profile-created", "source": source}}


def drain(listener) -> list:
    out = []
    while not listener.queue.empty():
        out.append(listener.queue.get_nowait())
    return out


async def test_injected_events_reach_only_remote_listeners():
    hub = EventHub()
    client = hub.listen(["lifecycle"], None, remote=True, client=True)
    peer = hub.listen(None, None, client=True)           # another member's subscription
    internal = hub.listen(["lifecycle"], None)            # e.g. the hardening watcher
    hub.inject(peer_event("m3"))
    hub.inject({"type": "bogus", "metadata": {}})          # not an event: ignored
    hub.inject("garbage")
    hub.lifecycle("profile-created", "/1.0/profiles/mine")
    got = drain(client)
    assert [e["location"] for e in got] == ["m3", "none"]
    assert got[0] == peer_event("m3")                       # as it came, its location kept
    assert [e["metadata"]["source"] for e in drain(peer)] == ["/1.0/profiles/mine"]
    assert [e["metadata"]["source"] for e in drain(internal)] == ["/1.0/profiles/mine"]


async def test_own_events_carry_the_member_name_and_close_ends_client_streams():
    hub = EventHub()
    name = ["none"]
    hub.locate = lambda: name[0]
    lst = hub.listen(remote=True, client=True)
    internal = hub.listen()
    assert hub.lifecycle("config-updated", "/1.0")["location"] == "none"
    name[0] = "m1"
    assert hub.lifecycle("config-updated", "/1.0")["location"] == "m1"
    hub.close()
    assert [e and e["location"] for e in drain(lst)] == ["none", "m1", None]   # None: the end
    assert lst.dropped and not internal.dropped
    hub.lifecycle("config-updated", "/1.0")
    assert drain(lst) == [] and len(drain(internal)) == 3


class FakeCluster:
    def __init__(self):
        self.clustered = True
        self.member_id = 1
        self.server_name = "m1"
        self.heartbeat = SimpleNamespace(received=0, rounds=0)
        self.rows: list[dict] = []
        self.offline: set[int] = set()
        self.reads = 0

    def member(self, mid: int, name: str, state: int = 0) -> None:
        self.rows.append({"id": mid, "name": name, "address": f"10.0.0.{mid}:8443", "state": state})

    async def members(self) -> list[dict]:
        self.reads += 1
        return [dict(r) for r in self.rows]

    def online(self, m: dict) -> bool:
        return m["id"] not in self.offline


class FakePeers:
    """The subscription double: per address, a script of outcomes, one per connection attempt:
    an exception to raise, or a list of messages to deliver before the stream stays open."""

    def __init__(self):
        self.mesh: EventMesh | None = None      # the mesh under test (it gets the reports)
        self.scripts: dict[str, list] = {}
        self.attempts: dict[str, int] = {}
        self.open: set[str] = set()

    async def __call__(self, link) -> None:
        self.attempts[link.address] = self.attempts.get(link.address, 0) + 1
        script = self.scripts.get(link.address, [])
        step = script.pop(0) if script else []
        if isinstance(step, Exception):
            raise step
        self.mesh.opened(link)
        self.open.add(link.address)
        try:
            for text in step:
                self.mesh.received(link, text)
            await asyncio.Event().wait()       # open until cancelled
        finally:
            self.open.discard(link.address)


@pytest.fixture
def world(monkeypatch):
    monkeypatch.setattr(event_mesh, "BACKOFF", (0.01, 0.02))
    monkeypatch.setattr(event_mesh, "CHECK_EVERY", 0.01)
    cluster = FakeCluster()
    hub = EventHub()
    peers = FakePeers()
    mesh = peers.mesh = EventMesh(SimpleNamespace(events=hub, cluster=cluster), subscribe=peers)
    return SimpleNamespace(cluster=cluster, hub=hub, peers=peers, mesh=mesh)


async def settle(cond, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.005)


async def test_links_follow_the_member_list(world):
    c, m = world.cluster, world.mesh
    c.member(1, "m1")
    c.member(2, "m2")
    c.member(3, "m3")
    c.member(4, "m4", state=event_mesh.PENDING)          # still joining: not yet
    await m.refresh()
    assert set(m.status()) == {"m2", "m3"}
    await settle(lambda: world.peers.open == {"10.0.0.2:8443", "10.0.0.3:8443"})
    assert all(v["connected"] for v in m.status().values())

    c.offline.add(3)                                      # offline: dropped, not retried
    c.rows[3]["state"] = 0                                # m4 has joined
    await m.refresh()
    assert set(m.status()) == {"m2", "m4"}
    await settle(lambda: world.peers.open == {"10.0.0.2:8443", "10.0.0.4:8443"})
    before = world.peers.attempts["10.0.0.2:8443"]

    c.rows = [r for r in c.rows if r["id"] != 4]          # removed
    c.rows[1]["name"] = "m2b"                             # renamed: the same link
    await m.refresh()
    assert set(m.status()) == {"m2b"} and world.peers.attempts["10.0.0.2:8443"] == before
    c.rows[1]["address"] = "10.0.0.22:8443"               # moved: a new link
    await m.refresh()
    await settle(lambda: world.peers.open == {"10.0.0.22:8443"})

    c.clustered = False                                   # standalone again: no links
    await m.refresh()
    assert m.status() == {}
    await settle(lambda: not world.peers.open)
    await m.stop()


async def test_received_events_are_injected_and_links_reconnect(world):
    c, m, peers = world.cluster, world.mesh, world.peers
    c.member(1, "m1")
    c.member(2, "m2")
    addr = "10.0.0.2:8443"
    peers.scripts[addr] = [ConnectionRefusedError("refused"), OSError("unreachable"),
                           [json.dumps(peer_event("m2", "/1.0/profiles/a")), "not json"]]
    client = world.hub.listen(["lifecycle"], None, remote=True, client=True)
    await m.refresh()
    await settle(lambda: m.status()["m2"]["connected"])
    st = m.status()["m2"]
    assert peers.attempts[addr] == 3 and st["failures"] == 2 and "unreachable" in st["last_error"]
    assert st["received"] == 1 and st["connects"] == 1
    assert [e["metadata"]["source"] for e in drain(client)] == ["/1.0/profiles/a"]
    await m.stop()
    assert m.status() == {} and not peers.open


async def test_the_loop_reads_members_when_a_heartbeat_came(world, monkeypatch):
    monkeypatch.setattr(event_mesh, "REFRESH_MAX", 60.0)
    c, m = world.cluster, world.mesh
    c.member(1, "m1")
    m.start()
    await settle(lambda: c.reads == 1)                    # at start
    await asyncio.sleep(0.05)
    assert c.reads == 1                                   # nothing new: no reading
    c.member(2, "m2")
    c.heartbeat.received += 1                             # a heartbeat came: read again
    await settle(lambda: "m2" in m.status())
    assert c.reads == 2
    m.poke()
    await settle(lambda: c.reads == 3)
    await m.stop()
    assert world.peers.open == set()


async def test_an_unreadable_member_list_is_retried(world, monkeypatch):
    c, m = world.cluster, world.mesh
    calls = []

    async def failing():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no leader")
        return [{"id": 1, "name": "m1", "address": "a:1", "state": 0},
                {"id": 2, "name": "m2", "address": "b:1", "state": 0}]
    c.members = failing
    monkeypatch.setattr(event_mesh, "REFRESH_MAX", 1.05)  # the retry comes a second after a failure
    m.start()
    await settle(lambda: "m2" in m.status(), timeout=3)
    await m.stop()
