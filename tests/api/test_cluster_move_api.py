"""Moving instances between members and evacuating a member (corral/cluster/migrate.py, evacuate.py,
corral/instance/clustermove.py, corral/api/cluster_move.py, cluster_evacuate.py) against an
in-process corrald (mock drivers, a real dqlite database, the real API on a unix socket) that is
member "a" of a cluster whose other members "b" and "c" are doubles (`FakeMember`): they answer the
internal endpoints as a member does, keeping their instances' volumes as plain directories, and pull
and serve volume streams in corral/storage/transfer.py's format. Calls to member "a" itself go to
the real daemon. Texts are LXD 5.0.2's where it has them (checked on a 3-member LXD cluster here)."""
from __future__ import annotations

import asyncio
import io
import os
import shutil
import tempfile
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from corral.cluster import render
from corral.cluster.peer import PeerError
from corral.db.queries import moves as qm
from corral.db.queries import nodes as qnodes
from corral.storage import transfer
from inproc import Harness
from test_cluster_api import FakeCluster, add_member, bootstrap, error

A, B, C = "10.1.0.1:8443", "10.1.0.2:8443", "10.1.0.3:8443"


class FakeResponse:
    """What clustermove reads of a volume stream's response (aiohttp.ClientResponse's part)."""

    def __init__(self, data: bytes, status: int = 200):
        self.status = status
        self._data = io.BytesIO(data)
        self.content = self

    async def read(self, n: int = -1) -> bytes:
        return self._data.read(n)

    async def text(self) -> str:
        return self._data.getvalue().decode()

    def close(self) -> None:
        pass


class FakeMember:
    """Another member: its instances' volumes under `dir/<name>/{volume,snapshots/<snap>}`."""

    def __init__(self, name: str, address: str, base: str, peer: "FakePeer"):
        self.name, self.address, self.peer = name, address, peer
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir)
        self.status: dict[str, str] = {}
        self.calls: list[tuple] = []
        self.fail: dict[str, str] = {}
        self.on_receive = None

    def volume(self, name: str, snap: str | None = None) -> str:
        return os.path.join(self.dir, name, "snapshots", snap) if snap else os.path.join(self.dir, name, "volume")

    async def handle(self, method: str, path: str, body):
        u = urlsplit(path)
        op = u.path.rsplit("/", 1)[1]
        args = body if body is not None else {k: v[0] for k, v in parse_qs(u.query).items()}
        self.calls.append((op, args.get("name"), args.get("action")))
        if op in self.fail:
            raise PeerError(self.fail[op])
        return await getattr(self, op.replace("instance-", "op_"))(args)

    async def op_info(self, a):
        return {"status": self.status.get(a["name"], "Stopped"), "backups": 0, "last_state": ""}

    async def op_state(self, a):
        was = self.status.get(a["name"]) == "Running"
        self.status[a["name"]] = "Running" if a["action"] == "start" else "Stopped"
        return {"was_running": was}

    async def op_receive(self, a):
        for snap in [None, *a["snapshots"]]:
            dest = self.volume(a["new_name"], snap)
            os.makedirs(dest)
            q = f"project={a['project']}&name={a['name']}" + (f"&snapshot={snap}" if snap else "")
            resp = await self.peer.session().get(f"https://{a['source_address']}/internal/cluster/instance-volume?{q}")
            try:
                assert resp.status == 200, await resp.text()
                await asyncio.to_thread(transfer.extract_tree,
                                        transfer.buffered_reader(asyncio.get_running_loop(), resp.content.read), dest)
            finally:
                resp.close()
        if self.on_receive is not None:
            await self.on_receive(a)
        return None

    async def op_activate(self, a):
        self.status[a["name"]] = "Stopped"

    async def op_discard(self, a):
        shutil.rmtree(os.path.join(self.dir, a["name"]))

    async def op_send(self, a):
        """As a member's clustermove.send does, to the real member "a" (the only one that runs code)."""
        assert a["target"] == "a" and self.status.get(a["name"], "Stopped") == "Stopped"
        snaps = sorted(os.listdir(os.path.join(self.dir, a["name"], "snapshots"))) \
            if os.path.isdir(os.path.join(self.dir, a["name"], "snapshots")) else []
        body = {"project": a["project"], "name": a["name"], "new_name": a["new_name"], "pool": "default",
                "snapshots": snaps, "source_address": self.address}
        await self.peer.call(A, "POST", "/internal/cluster/instance-receive", body)
        async with self.peer.state.db.transaction() as tx:
            where = await qm.location(tx, a["project"], a["name"])
            await qm.move(tx, where["id"], 1, a["new_name"])
        await self.peer.call(A, "POST", "/internal/cluster/instance-activate",
                             {"project": a["project"], "name": a["new_name"]})
        shutil.rmtree(os.path.join(self.dir, a["name"]))

    async def stream(self, query: dict) -> FakeResponse:
        out = io.BytesIO()
        await asyncio.to_thread(transfer.write_tree, self.volume(query["name"], query.get("snapshot")), out)
        return FakeResponse(out.getvalue())


class FakeSession:
    def __init__(self, peer: "FakePeer"):
        self.peer = peer

    def get(self, url: str, **kw):
        u = urlsplit(url)
        if u.netloc == A:
            return self.peer.unix().get(f"http://a{u.path}?{u.query}", **kw)
        return self.peer.members[u.netloc].stream({k: v[0] for k, v in parse_qs(u.query).items()})


class FakePeer:
    """state.cluster.peer: member "a" is the daemon itself (over its unix socket), others are doubles."""

    def __init__(self, state, socket: str):
        self.state, self.socket = state, socket
        self.members: dict[str, FakeMember] = {}
        self._unix = None

    def unix(self) -> aiohttp.ClientSession:
        if self._unix is None:
            self._unix = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket))
        return self._unix

    def session(self) -> FakeSession:
        return FakeSession(self)

    async def call(self, address: str, method: str, path: str, body=None, timeout: float = 10.0):
        if address != A:
            return await self.members[address].handle(method, path, body)
        async with self.unix().request(method, f"http://a{path}", json=body) as resp:
            doc = await resp.json()
        if resp.status >= 400 or doc.get("type") == "error":
            raise PeerError(doc.get("error") or f"HTTP {resp.status}")
        return doc.get("metadata")

    async def close(self) -> None:
        if self._unix is not None:
            await self._unix.close()


class MoveCluster(FakeCluster):
    def __init__(self, state):
        super().__init__(state)
        self.peer = None

    async def members(self) -> list[dict]:
        async with self.state.db.session() as tx:
            return await qnodes.members(tx)

    def online(self, m: dict) -> bool:
        return m["id"] == self.member_id or render.online(m["heartbeat"], 20, datetime.now(timezone.utc))


@pytest.fixture
def mc():
    """Member "a" (the daemon) with pool "default" and a root disk in the default profile; members
    "b" and "c" (doubles), online."""
    h = Harness(MoveCluster).start()
    base = tempfile.mkdtemp(prefix="corral-move-api-", dir="/var/tmp")
    try:
        bootstrap(h)
        peer = h.cluster.peer = FakePeer(h.state, h.socket)
        # the pool first, while "a" is the only member (the doubles hold their volumes themselves)
        r = h.request("POST", "/1.0/storage-pools", {"name": "default", "driver": "dir"})
        assert r.status in (200, 201), r.body
        for name, address in (("b", B), ("c", C)):
            add_member(h, name, address)
            peer.members[address] = FakeMember(name, address, base, peer)
        r = h.request("PATCH", "/1.0/profiles/default",
                      {"devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}})
        assert r.status == 200, r.body
        h.b, h.c = peer.members[B], peer.members[C]
        yield h
    finally:
        try:
            if h.cluster is not None and h.cluster.peer is not None:
                h.run(h.cluster.peer.close())
        finally:
            h.stop()
            shutil.rmtree(base, ignore_errors=True)


def ok(h, r) -> dict:
    assert r.status == 202, r.body
    op = h.wait_op(r)
    assert op["status"] == "Success", (op["err"], op["metadata"])
    return op


def failed(h, r) -> str:
    assert r.status == 202, r.body
    op = h.wait_op(r)
    assert op["status"] == "Failure", op
    return op["err"]


def launch(h, name: str, *, running: bool = False, config: dict | None = None, snapshot: str = "") -> None:
    ok(h, h.request("POST", "/1.0/instances?target=a", {"name": name, "source": {"type": "none"}, "config": config or {}}))
    with open(os.path.join(volume_path(h, name), "rootfs", "hello"), "w") as f:
        f.write(f"I am {name}\n")
    if snapshot:
        ok(h, h.request("POST", f"/1.0/instances/{name}/snapshots", {"name": snapshot}))
    if running:
        ok(h, h.request("PUT", f"/1.0/instances/{name}/state", {"action": "start"}))


def volume_path(h, name: str, snap: str | None = None) -> str:
    return h.call(lambda: h.state.pools.pool("default").instance_path(name, snap))


def has_volume(h, name: str) -> bool:
    return h.call(lambda: h.state.pools.pool("default").has_instance(name))


def node_of(h, name: str) -> str:
    return h.sql("SELECT n.name AS node FROM instances i JOIN nodes n ON n.id = i.node_id WHERE i.name = ?",
                 [name])[0]["node"]


def status(h, name: str) -> str:
    return h.get(f"/1.0/instances/{name}").metadata["status"]


def config_of(h, name: str) -> dict:
    """Its stored config (read from the database: the API of an instance on a double is forwarded)."""
    return {r["key"]: r["value"] for r in h.sql(
        "SELECT c.key, c.value FROM instances_config c JOIN instances i ON i.id = c.instance_id "
        "WHERE i.name = ?", [name])}


def move(h, name: str, target: str, body: dict | None = None):
    return h.request("POST", f"/1.0/instances/{name}?target={target}",
                     {"name": name, "migration": True, **(body or {})})


def hello(path: str) -> str:
    with open(os.path.join(path, "rootfs", "hello")) as f:
        return f.read()


# ---- moving ---------------------------------------------------------------------------------------

def test_a_stopped_instance_moves_with_its_snapshots(mc):
    h = mc
    launch(h, "c1", snapshot="s0")
    assert h.request("PATCH", "/1.0/storage-pools/default/volumes/container/c1",
                     {"config": {"user.k": "v"}}).status == 200   # its volume's own record
    r = move(h, "c1", "b", {"live": False})
    assert r.json["metadata"]["description"] == "Migrating instance"
    assert r.json["metadata"]["resources"] == {"containers": ["/1.0/containers/c1"],
                                               "instances": ["/1.0/instances/c1"]}
    ok(h, r)
    assert node_of(h, "c1") == "b"
    assert [c[0] for c in h.b.calls] == ["instance-receive", "instance-activate"]
    assert hello(h.b.volume("c1")) == "I am c1\n" and hello(h.b.volume("c1", "s0")) == "I am c1\n"
    assert not has_volume(h, "c1")                                # the source's copy went last
    assert h.sql("SELECT n.name AS node FROM storage_volumes v JOIN nodes n ON n.id = v.node_id "
                 "WHERE v.name = 'c1'") == [{"node": "b"}]
    # (its API answers come from "b" now, a double here): the snapshot's record moved with it
    assert h.sql("SELECT s.name FROM instances_snapshots s JOIN instances i ON i.id = s.instance_id "
                 "WHERE i.name = 'c1'") == [{"name": "s0"}]


def test_a_failed_copy_changes_nothing(mc):
    h = mc
    launch(h, "c1", snapshot="s0")
    h.b.fail["instance-receive"] = "No space left on device"
    err = failed(h, move(h, "c1", "b"))
    assert err == 'Failed to copy instance "c1" to cluster member "b": No space left on device'
    assert node_of(h, "c1") == "a" and hello(volume_path(h, "c1")) == "I am c1\n"
    assert hello(volume_path(h, "c1", "s0")) == "I am c1\n"
    assert [c[0] for c in h.b.calls] == ["instance-receive"]


def test_records_that_cannot_move_leave_the_source_whole_and_the_copy_dropped(mc):
    h = mc
    launch(h, "c1")

    async def race(_args):   # the new name is taken while the volume is on its way
        async with h.state.db.transaction() as tx:
            await tx.execute("INSERT INTO instances (node_id, name, architecture, type, ephemeral, creation_date, "
                             "stateful, last_use_date, description, project_id) "
                             "VALUES (1, 'c9', 2, 0, 0, '2026-01-01', 0, '2026-01-01', '', 1)")
    h.b.on_receive = race
    assert failed(h, move(h, "c1", "b", {"name": "c9"}))
    assert [c[0] for c in h.b.calls] == ["instance-receive", "instance-discard"]
    assert not os.path.exists(os.path.join(h.b.dir, "c9"))
    assert node_of(h, "c1") == "a" and hello(volume_path(h, "c1")) == "I am c1\n"


def test_a_move_may_rename(mc):
    h = mc
    launch(h, "c1")
    ok(h, move(h, "c1", "c", {"name": "c2"}))
    assert node_of(h, "c2") == "c" and hello(h.c.volume("c2")) == "I am c1\n"
    assert h.get("/1.0/instances/c1").status == 404


def test_a_running_instance(mc):
    h = mc
    launch(h, "c1", running=True)
    # what `lxc move c1 --target b` sends (live): LXD 5.0.2 without CRIU refuses, nothing changes
    err = failed(h, move(h, "c1", "b", {"live": True}))
    assert err in ('Failed stopping instance "c1": Unable to perform container live migration. CRIU isn\'t '
                   'installed', 'Failed stopping instance "c1": not implemented: stateful stop (CRIU)')
    assert failed(h, h.request("POST", "/1.0/instances/c1?target=b", {"name": "c1", "migration": True})) == err
    assert (node_of(h, "c1"), status(h, "c1"), h.b.calls) == ("a", "Running", [])
    # `--stateless`: stopped, moved and started again on the target (as LXD 5.0.2 does)
    ok(h, move(h, "c1", "b", {"live": False}))
    assert node_of(h, "c1") == "b"
    assert [c[0] for c in h.b.calls] == ["instance-receive", "instance-activate", "instance-state"]
    assert h.b.status["c1"] == "Running"


def test_checks_before_the_operation(mc):
    h = mc
    launch(h, "c1")
    launch(h, "c2")
    assert error(move(h, "c1", "nosuch")) == (404, "Failed to get target node: Cluster member not found")
    assert error(move(h, "zz", "b")) == (404, "Failed to get address of instance's member: Instance not found")
    assert error(move(h, "c1", "b", {"name": "c2"})) == (409, 'Name "c2" already in use')
    h.sql("UPDATE nodes SET heartbeat = '2026-01-01T00:00:00Z' WHERE name = 'c'")
    assert error(move(h, "c1", "c")) == (400, "Target node is offline")
    h.sql("UPDATE nodes SET state = ? WHERE name = 'b'", [qnodes.EVACUATED])
    assert error(move(h, "c1", "b")) == (403, "Cluster member is evacuated")
    h.sql("UPDATE nodes SET state = 0 WHERE name = 'b'")
    ok(h, h.request("POST", "/1.0/instances/c1/backups", {"name": "b0"}))
    assert error(move(h, "c1", "b")) == (400, "Instance has backups")
    assert failed(h, move(h, "c2", "a")) == "Target must be different than instance's current location"
    assert h.b.calls == [] and node_of(h, "c1") == node_of(h, "c2") == "a"


def test_a_plain_rename_with_a_target_stays_a_rename(mc):
    """LXD: ?target= without "migration" renames in place."""
    h = mc
    launch(h, "c1")
    ok(h, h.request("POST", "/1.0/instances/c1?target=b", {"name": "c1x"}))
    assert node_of(h, "c1x") == "a" and h.b.calls == []


def test_internal_endpoints_are_for_members(mc):
    h = mc
    launch(h, "c1")
    r = h.get("/internal/cluster/instance-info?project=default&name=c1")   # the unix socket is root's
    assert (r.status, r.metadata) == (200, {"status": "Stopped", "backups": 0, "last_state": ""})
    assert error(h.request("POST", "/internal/cluster/instance-discard",
                           {"project": "default", "name": "c1", "pool": "default"})) == \
        (400, 'Instance "c1" lives on this member: its volume stays')
    assert has_volume(h, "c1")


# ---- evacuation -----------------------------------------------------------------------------------

def test_evacuate_then_restore(mc):
    h = mc
    launch(h, "c1", running=True, snapshot="s0")
    launch(h, "c2")
    launch(h, "c3", running=True, config={"cluster.evacuate": "stop"})
    r = h.request("POST", "/1.0/cluster/members/a/state", {"action": "evacuate"})
    meta = r.json["metadata"]
    assert (meta["description"], meta["resources"]) == ("Evacuating cluster member", None)
    op = ok(h, r)
    assert op["metadata"]["evacuation_progress"] == 'Stopping "c3" in project "default"'
    assert h.get("/1.0/cluster/members/a").metadata["status"] == "Evacuated"
    # c1 and c2 went to the members with the fewest instances; c1 runs again there; c3 only stopped
    assert (node_of(h, "c1"), node_of(h, "c2"), node_of(h, "c3")) == ("b", "c", "a")
    assert h.b.status["c1"] == "Running" and h.c.status.get("c2", "Stopped") == "Stopped"
    assert [c[0] for c in h.b.calls] == ["instance-receive", "instance-activate", "instance-state"]
    assert config_of(h, "c1")["volatile.evacuate.origin"] == "a"
    assert config_of(h, "c2")["volatile.evacuate.origin"] == "a"
    assert "volatile.evacuate.origin" not in config_of(h, "c3")
    assert status(h, "c3") == "Stopped" and config_of(h, "c3")["volatile.last_state.power"] == "RUNNING"
    assert not has_volume(h, "c1") and not has_volume(h, "c2") and has_volume(h, "c3")
    assert failed(h, h.request("POST", "/1.0/cluster/members/a/state", {"action": "evacuate"})) == \
        "Cluster member is already evacuated"

    r = h.request("POST", "/1.0/cluster/members/a/state", {"action": "restore"})
    assert r.json["metadata"]["description"] == "Restoring cluster member"
    op = ok(h, r)
    assert op["metadata"]["evacuation_progress"] == 'Migrating "c2" in project "default" from "c"'
    assert h.get("/1.0/cluster/members/a").metadata["status"] == "Online"
    assert (node_of(h, "c1"), node_of(h, "c2"), node_of(h, "c3")) == ("a", "a", "a")
    assert (status(h, "c1"), status(h, "c2"), status(h, "c3")) == ("Running", "Stopped", "Running")
    for n in ("c1", "c2", "c3"):
        assert "volatile.evacuate.origin" not in config_of(h, n)
    assert hello(volume_path(h, "c1")) == "I am c1\n" and hello(volume_path(h, "c1", "s0")) == "I am c1\n"
    assert hello(volume_path(h, "c2")) == "I am c2\n"
    assert not os.listdir(h.b.dir) and not os.listdir(h.c.dir)
    assert [c[0] for c in h.b.calls][3:] == ["instance-info", "instance-state", "instance-send"]
    assert failed(h, h.request("POST", "/1.0/cluster/members/a/state", {"action": "restore"})) == \
        "Cluster member is already restored"


def test_a_member_whose_instances_have_nowhere_to_go(mc):
    h = mc
    launch(h, "c1", running=True)
    h.sql("UPDATE nodes SET state = ? WHERE name = 'b'", [qnodes.EVACUATED])
    h.sql("UPDATE nodes SET heartbeat = '2026-01-01T00:00:00Z' WHERE name = 'c'")
    err = failed(h, h.request("POST", "/1.0/cluster/members/a/state", {"action": "evacuate"}))
    assert err == ('Cluster member "a" is the last online member that is not evacuated: '
                   "its instances would have nowhere to go")
    assert h.sql("SELECT state FROM nodes WHERE name = 'a'") == [{"state": 0}]
    assert status(h, "c1") == "Running" and node_of(h, "c1") == "a"
    # an offline member cannot be evacuated either
    assert failed(h, h.request("POST", "/1.0/cluster/members/c/state", {"action": "evacuate"})) == \
        'Cluster member "c" is offline'
    assert h.sql("SELECT state FROM nodes WHERE name = 'c'") == [{"state": 0}]


def test_member_state_requests(mc):
    h = mc
    assert error(h.request("POST", "/1.0/cluster/members/a/state", {"action": "bogus"})) == \
        (400, 'Unknown action "bogus"')
    assert error(h.request("POST", "/1.0/cluster/members/a/state", {})) == (400, 'Unknown action ""')
    assert error(h.request("POST", "/1.0/cluster/members/zz/state", {"action": "evacuate"})) == \
        (404, "Cluster member not found")
    assert h.sql("SELECT state FROM nodes WHERE name = 'a'") == [{"state": 0}]


def test_evacuation_modes():
    from corral.cluster.evacuate import mode
    root = {"root": {"type": "disk", "path": "/", "pool": "default"}}
    assert mode({}, root) == "migrate"
    assert mode({}, {**root, "eth0": {"type": "nic", "network": "lxdbr0"}}) == "migrate"
    # bound to the member: a host path, a custom volume of a local pool, an unmanaged NIC, a unix device
    for dev in ({"type": "disk", "path": "/srv", "source": "/srv"},
                {"type": "disk", "path": "/data", "pool": "default", "source": "vol1"},
                {"type": "nic", "nictype": "bridged", "parent": "br0"},
                {"type": "unix-char", "path": "/dev/zero"}):
        assert mode({}, {**root, "x": dev}) == "stop", dev
        assert mode({"cluster.evacuate": "migrate"}, {**root, "x": dev}) == "migrate"
    assert mode({"cluster.evacuate": "stop"}, root) == "stop"


def test_cluster_evacuate_key(mc):
    h = mc
    assert error(h.request("POST", "/1.0/instances", {"name": "x", "source": {"type": "none"},
                                                      "config": {"cluster.evacuate": "bogus"}}))[0] == 400
    assert error(h.request("POST", "/1.0/instances", {"name": "x", "source": {"type": "none"},
                                                      "config": {"cluster.evacuate": "live-migrate"}})) == \
        (501, "not implemented: cluster.evacuate=live-migrate (live migration needs CRIU)")


def test_a_copy_of_another_members_instance_is_pulled_from_it(mc):
    """`lxc copy c1 c5` where c1 lives on member b: the new instance's volume (and the snapshots)
    come from b's streams."""
    h = mc
    launch(h, "c1", snapshot="s0")
    ok(h, move(h, "c1", "b"))
    h.b.calls.clear()
    ok(h, h.request("POST", "/1.0/instances?target=a", {"name": "c5", "source": {"type": "copy", "source": "c1"}}))
    assert node_of(h, "c5") == "a" and node_of(h, "c1") == "b"
    assert hello(volume_path(h, "c5")) == "I am c1\n" and hello(volume_path(h, "c5", "s0")) == "I am c1\n"
    ok(h, h.request("POST", "/1.0/instances?target=a", {"name": "c6", "source": {"type": "copy", "source": "c1/s0"}}))
    assert hello(volume_path(h, "c6")) == "I am c1\n"
    assert [s["name"] for s in h.get("/1.0/instances/c6/snapshots?recursion=1").metadata] == []
    # the member holding it fails: no instance, no volume left behind
    async def gone(query):
        return FakeResponse(b'{"type":"error","error":"Instance not found"}', status=404)
    h.b.stream = gone
    err = failed(h, h.request("POST", "/1.0/instances?target=a", {"name": "c7", "source": {"type": "copy", "source": "c1"}}))
    assert err == f"Failed to fetch volume c1 from {B}: Instance not found"
    assert h.get("/1.0/instances/c7").status == 404 and not has_volume(h, "c7")


def test_an_ephemeral_instance_stopped_to_be_moved_is_not_deleted(mc):
    h = mc
    ok(h, h.request("POST", "/1.0/instances?target=a", {"name": "e1", "source": {"type": "none"},
                                                         "ephemeral": True}))
    ok(h, h.request("PUT", "/1.0/instances/e1/state", {"action": "start"}))
    ok(h, move(h, "e1", "b", {"live": False}))
    assert node_of(h, "e1") == "b" and h.b.status["e1"] == "Running"
    assert h.sql("SELECT ephemeral FROM instances WHERE name = 'e1'") == [{"ephemeral": 1}]
