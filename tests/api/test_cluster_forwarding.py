"""Instances and operations across members, against an in-process corrald (mock drivers, a real dqlite
database, the real API app on a unix socket) that believes it is member "a" of a cluster, and a
stand-in for member "b": a small HTTPS server on loopback that records what it is asked and answers
as a member would. What is checked is this member's side: which requests are forwarded to "b" (and
how: method, path, body, the forwarded mark, websockets), how listings merge "b"'s answer (or its
absence: Error, location "b"), and that this member's operations are recorded where "b" finds them.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import tempfile
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp import web

from corral.api import forward, instance_routes
from corral.cluster import fanout, render
from corral.db.queries import instances as qi
from corral.pki import certs
from helpers import free_port
from inproc import Harness


def _now(delta: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StubPeer:
    """state.cluster.peer: the session members talk with (here: no certificate checks)."""

    def __init__(self):
        self._session = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False, limit=0))
        return self._session


class MemberA:
    """state.cluster of member "a" (id 1) of a two-member cluster."""

    def __init__(self, state):
        self.state = state
        self.clustered = True
        self.server_name = "a"
        self.member_id = 1
        self.address = "127.0.0.1:1"
        self.peer = StubPeer()

    def online(self, member: dict) -> bool:
        return member["id"] == self.member_id or render.online(member["heartbeat"], 20, datetime.now(timezone.utc))

    async def tables_changed(self, tables) -> None:
        return None


class MemberB:
    """Member "b": an HTTPS server answering as a member holding c2 (and an operation op-b)."""

    def __init__(self):
        self.seen: list[dict] = []
        self.delay = 0.0
        self.port = free_port()
        self.runner = None
        app = web.Application()
        app.router.add_route("GET", "/1.0/instances", self.listing)
        app.router.add_route("GET", "/1.0/operations", self.operations)
        app.router.add_route("GET", "/1.0/operations/{id}/websocket", self.websocket)
        app.router.add_route("*", "/{tail:.*}", self.anything)
        self.app = app

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        crt, key = certs.generate("member-b")
        d = tempfile.mkdtemp(prefix="corral-member-b-")
        cp, kp = os.path.join(d, "b.crt"), os.path.join(d, "b.key")
        with open(cp, "wb") as f:
            f.write(crt)
        with open(kp, "wb") as f:
            f.write(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cp, kp)
        shutil.rmtree(d)
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=ctx).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _record(self, request) -> dict:
        entry = {"method": request.method, "path": request.path_qs, "headers": dict(request.headers),
                 "body": await request.read()}
        self.seen.append(entry)
        return entry

    async def listing(self, request):
        await self._record(request)
        await asyncio.sleep(self.delay)
        rec = int(request.query.get("recursion", "0"))
        inst = {"name": "c2", "project": "default", "status": "Running", "status_code": 103, "location": "b",
                "type": "container", "config": {}, "expanded_config": {}}
        if rec >= 2:
            inst["state"] = {"status": "Running", "pid": 42}
        return web.json_response({"type": "sync", "status": "Success", "status_code": 200, "metadata": [inst]})

    async def operations(self, request):
        await self._record(request)
        op = {"id": "op-b", "class": "task", "description": "Starting instance", "status": "Running",
              "status_code": 103, "location": "b"}
        return web.json_response({"type": "sync", "metadata": {"running": [op]}})

    async def websocket(self, request):
        await self._record(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(b"b:" + msg.data)
            else:
                break
        return ws

    async def anything(self, request):
        entry = await self._record(request)
        return web.json_response({"type": "sync", "status": "Success", "status_code": 200,
                                  "metadata": {"answered_by": "b", "path": entry["path"],
                                               "body": entry["body"].decode(errors="replace")}},
                                 headers={"ETag": '"from-b"'})


@pytest.fixture
def cluster():
    h = Harness(MemberA)
    b = MemberB()
    h.start()
    try:
        h.run(b.start())
        h.sql("UPDATE nodes SET name = 'a', address = '127.0.0.1:1' WHERE id = 1")
        h.sql("INSERT INTO nodes (name, description, address, schema, api_extensions, heartbeat, state, arch) "
              "SELECT 'b', '', ?, schema, api_extensions, ?, 0, 2 FROM nodes WHERE id = 1", [b.address, _now()])
        add_instance(h, "c1", "a")
        add_instance(h, "c2", "b")
        yield h, b
    finally:
        try:
            h.run(b.stop())
            if h.cluster is not None and h.cluster.peer._session is not None:
                h.run(h.cluster.peer._session.close())
        finally:
            h.stop()


def add_instance(h: Harness, name: str, node: str) -> None:
    rec = {"name": name, "architecture": "x86_64", "type": "container", "ephemeral": False,
           "created_at": _now(), "last_used_at": _now(), "stateful": False, "description": "",
           "project": "default", "config": {}, "devices": {"root": {"type": "disk", "path": "/", "pool": "p"}},
           "profiles": ["default"], "node": node}

    async def go():
        async with h.state.db.transaction() as tx:
            await qi.create(tx, rec)
    h.run(go())


# ---- forwarding of /1.0/instances/{name}/... ---------------------------------------------------------

def test_requests_about_another_members_instance_are_answered_by_it(cluster):
    h, b = cluster
    r = h.get("/1.0/instances/c2")
    assert r.status == 200 and r.metadata["answered_by"] == "b", r.body
    assert r.headers["ETag"] == '"from-b"'
    seen = b.seen[-1]
    assert (seen["method"], seen["path"]) == ("GET", "/1.0/instances/c2")
    assert seen["headers"][forward.FORWARDED] == "1"

    # a body goes through as sent (a file push here), with the query
    r = h.request("POST", "/1.0/instances/c2/files?path=/root/x", headers={"Content-Type": "application/octet-stream"},
                  body="hello")
    assert r.metadata["answered_by"] == "b"
    assert (b.seen[-1]["method"], b.seen[-1]["path"], b.seen[-1]["body"]) == \
        ("POST", "/1.0/instances/c2/files?path=/root/x", b'"hello"')
    for method, path in (("PUT", "/1.0/instances/c2/state"), ("DELETE", "/1.0/instances/c2"),
                         ("GET", "/1.0/containers/c2/snapshots"), ("POST", "/1.0/instances/c2/exec"),
                         ("GET", "/1.0/instances/c2/logs/lxc.log"), ("PATCH", "/1.0/instances/c2"),
                         ("GET", "/1.0/instances/c2/backups"), ("GET", "/1.0/instances/c2/metadata")):
        r = h.request(method, path, {} if method in ("PUT", "POST", "PATCH") else None)
        assert r.status == 200 and r.metadata["answered_by"] == "b", (method, path, r.body)
        assert (b.seen[-1]["method"], b.seen[-1]["path"]) == (method, path)


def test_local_unknown_and_moves_are_answered_here(cluster):
    h, b = cluster
    before = len(b.seen)
    r = h.get("/1.0/instances/c1")
    assert r.status == 200 and r.metadata["location"] == "a" and r.metadata["name"] == "c1"
    assert h.get("/1.0/instances/nope").status == 404
    assert h.get("/1.0/instances/c2?project=nope").status == 404   # the project is checked here
    # a move to another member is the move handler's, not forwarded
    r = h.request("POST", "/1.0/instances/c2?target=a", {"migration": True})
    assert "answered_by" not in r.body.decode()
    assert len(b.seen) == before
    # the forwarded mark from a client (not a member) changes nothing: still forwarded
    r = h.request("GET", "/1.0/instances/c2", headers={forward.FORWARDED: "1"})
    assert r.metadata["answered_by"] == "b"


def test_a_forwarded_request_is_never_forwarded_again():
    from aiohttp.test_utils import make_mocked_request

    class D:
        class cluster:
            clustered = True

    app = web.Application()
    app["daemon"] = D()
    req = make_mocked_request("GET", "/1.0/instances/c2", headers={forward.FORWARDED: "1"}, app=app,
                              match_info={"name": "c2"})
    req["cluster_peer"] = True
    assert asyncio.run(instance_routes.remote_address(req)) is None


def test_member_unreachable_is_a_clear_error(cluster):
    h, b = cluster
    h.run(b.stop())
    r = h.get("/1.0/instances/c2")
    assert r.status == 503 and "Failed to forward the request to cluster member" in r.json["error"], r.body


# ---- listings --------------------------------------------------------------------------------------

def test_listing_merges_the_other_members_instances(cluster):
    h, b = cluster
    before = len(b.seen)
    r = h.get("/1.0/instances")
    assert r.metadata == ["/1.0/instances/c1", "/1.0/instances/c2"]
    assert len(b.seen) == before            # names come from the database alone
    r = h.get("/1.0/instances?recursion=1")
    assert [(i["name"], i["status"], i["location"]) for i in r.metadata] == [("c1", "Stopped", "a"),
                                                                            ("c2", "Running", "b")]
    asked = b.seen[-1]
    assert asked["path"] == "/1.0/instances?recursion=1&project=default"
    assert asked["headers"][forward.FORWARDED] == "1"
    r = h.get("/1.0/instances?recursion=2&all-projects=true")
    assert b.seen[-1]["path"] == "/1.0/instances?recursion=2&all-projects=true"
    assert [i["state"]["status"] for i in r.metadata] == ["Stopped", "Running"]
    # a filter applies to both members' instances (recursion 0 then asks for states)
    r = h.get("/1.0/instances?filter=status%20eq%20Running")
    assert r.metadata == ["/1.0/instances/c2"]
    r = h.get("/1.0/instances?recursion=1&filter=location%20eq%20a")
    assert [i["name"] for i in r.metadata] == ["c1"]


def test_an_unreachable_or_slow_member_is_not_waited_on(cluster, monkeypatch):
    h, b = cluster
    h.run(b.stop())
    t = time.monotonic()
    r = h.get("/1.0/instances?recursion=2")
    assert time.monotonic() - t < 2
    c2 = r.metadata[1]
    assert (c2["name"], c2["status"], c2["status_code"], c2["location"], c2["state"]) == \
        ("c2", "Error", 112, "b", None)
    assert r.metadata[0]["status"] == "Stopped"

    h.run(b.start())
    b.delay = 3
    monkeypatch.setattr(fanout, "ANSWER_TIMEOUT", 0.5)
    t = time.monotonic()
    r = h.get("/1.0/instances?recursion=1")
    assert time.monotonic() - t < 2
    assert [i["status"] for i in r.metadata] == ["Stopped", "Error"]
    b.delay = 0
    assert [i["status"] for i in h.get("/1.0/instances?recursion=1").metadata] == ["Stopped", "Running"]


def test_an_offline_member_is_not_asked(cluster):
    h, b = cluster
    h.sql("UPDATE nodes SET heartbeat = ? WHERE name = 'b'", [_now(-3600)])
    before = len(b.seen)
    r = h.get("/1.0/instances?recursion=1")
    assert [(i["name"], i["status"], i["location"]) for i in r.metadata] == [("c1", "Stopped", "a"),
                                                                            ("c2", "Error", "b")]
    assert len(b.seen) == before


# ---- operations ------------------------------------------------------------------------------------

def test_operations_of_another_member_are_forwarded(cluster):
    h, b = cluster
    h.sql("INSERT INTO operations (uuid, node_id, type, project_id) VALUES ('op-b', 2, 16, 1)")
    for method, path in (("GET", "/1.0/operations/op-b"), ("GET", "/1.0/operations/op-b/wait?timeout=5"),
                         ("DELETE", "/1.0/operations/op-b")):
        r = h.request(method, path)
        assert r.status == 200 and r.metadata["answered_by"] == "b", (path, r.body)
        assert (b.seen[-1]["method"], b.seen[-1]["path"]) == (method, path)
    assert h.get("/1.0/operations/op-unknown").status == 404

    async def stream():
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=h.socket)) as s:
            async with s.ws_connect("http://unix/1.0/operations/op-b/websocket?secret=x") as ws:
                await ws.send_bytes(b"ping")
                msg = await ws.receive(timeout=5)
                return msg.data
    assert asyncio.run(stream()) == b"b:ping"
    assert b.seen[-1]["path"] == "/1.0/operations/op-b/websocket?secret=x"

    # the listing has both members' operations, each with its location
    r = h.get("/1.0/operations?recursion=1")
    assert "op-b" in [o["id"] for o in r.metadata["running"]]
    assert {o["location"] for o in r.metadata["running"]} >= {"b"}
    assert b.seen[-1]["path"] == "/1.0/operations?recursion=1"
    assert b.seen[-1]["headers"][forward.FORWARDED] == "1"
    assert "/1.0/operations/op-b" in h.get("/1.0/operations").metadata["running"]
    # a member that cannot answer is left out, the listing still answers
    h.run(b.stop())
    r = h.get("/1.0/operations")
    assert r.status == 200 and "/1.0/operations/op-b" not in json.dumps(r.metadata)


def test_this_members_operations_are_recorded_before_the_answer(cluster):
    h, b = cluster
    h.sql("DELETE FROM instances")
    r = h.request("PUT", "/1.0/instances", {"state": {"action": "stop", "force": True}})
    assert r.status == 202, r.body
    op = r.json["metadata"]
    assert op["location"] == "a"
    rows = h.sql("SELECT uuid, node_id, type, project_id FROM operations")
    assert [(x["uuid"], int(x["node_id"]), x["project_id"]) for x in rows] == [(op["id"], 1, 1)]
    assert h.wait_op(r)["status"] == "Success"
    h.call(h.d.operations._drop, op["id"])   # what the retention timer does
    deadline = time.monotonic() + 5
    while h.sql("SELECT uuid FROM operations") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert h.sql("SELECT uuid FROM operations") == []


def test_config_maps_read_back_as_stored(cluster):
    """Config maps come from the database as one JSON object per owner (corral/db/queries/lxd.py's
    config_of): every value as written, NULL as None, keys sorted."""
    from corral.db.queries import lxd
    h, _ = cluster
    iid = h.sql("SELECT id FROM instances WHERE name = 'c1'")[0]["id"]
    odd = {"user.quote": 'say "hi"\\', "user.nl": "a\nb\tc", "user.uni": "\u00e9\u4e2d\U0001f600",
           "user.empty": "", "limits.cpu": "1", "user.json": '{"a": [1, 2]}'}
    for k, v in odd.items():
        h.sql("INSERT INTO instances_config (instance_id, key, value) VALUES (?, ?, ?)", [iid, k, v])
    h.sql("INSERT INTO instances_config (instance_id, key, value) VALUES (?, 'user.null', NULL)", [iid])

    async def read():
        async with h.state.db.session() as tx:
            return await lxd.config_of(tx, "instances_config", "instance_id", [iid]), \
                await lxd.config_of(tx, "instances_config", "instance_id")
    some, every = h.run(read())
    want = {**odd, "user.null": None}
    assert some == {iid: dict(sorted(want.items()))} and list(some[iid]) == sorted(want)
    assert every[iid] == some[iid]


def test_an_instance_read_in_one_statement_is_the_instance_read_row_by_row(cluster):
    """qi.get / get_all read config, devices and profiles in the instance's statement: the record
    is what the per-table readers give (devices by name with `type` first, profiles in order)."""
    from corral.db.queries import lxd
    h, _ = cluster
    h.sql("INSERT INTO profiles (name, description, project_id) VALUES ('web', '', 1)")
    rec = {"name": "c3", "architecture": "x86_64", "type": "container", "ephemeral": False,
           "created_at": _now(), "last_used_at": _now(), "stateful": False, "description": "d",
           "project": "default", "config": {"b": "2", "a": "1 \"q\"", "user.x": "\u00e9"},
           "devices": {"root": {"type": "disk", "path": "/", "pool": "p"},
                       "eth0": {"type": "nic", "nictype": "bridged", "parent": "br0", "name": "eth0"},
                       "odd": {"type": "none"}},
           "profiles": ["web", "default"], "node": "b"}

    async def go():
        async with h.state.db.transaction() as tx:
            iid = await qi.create(tx, rec)
        async with h.state.db.session() as tx:
            one = await qi.get(tx, "default", "c3")
            every = [r for r in await qi.get_all(tx) if r["name"] == "c3"]
            theirs = [r for r in await qi.get_all(tx, "default", 2)]
            devices = (await lxd.devices_of(tx, "instances", "instance_id", [iid]))[iid]
            config = (await lxd.config_of(tx, "instances_config", "instance_id", [iid]))[iid]
            profiles = (await qi._profiles_of(tx, [iid]))[iid]
        return one, every, theirs, devices, config, profiles
    one, every, theirs, devices, config, profiles = h.run(go())
    assert one == every[0]
    assert (one["config"], one["devices"], one["profiles"]) == (config, devices, profiles)
    assert list(one["devices"]) == ["eth0", "odd", "root"] and list(one["devices"]["eth0"])[0] == "type"
    assert profiles == ["web", "default"] and one["node"] == "b" and "load_error" not in one
    assert [r["name"] for r in theirs] == ["c2", "c3"]   # the member's own only
