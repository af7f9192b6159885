"""Cluster groups (corral/api/cluster_groups.py) and where POST /1.0/instances places a new instance
(corral/cluster/placement.py, create_instance in corral/api/instances.py), against an in-process
corrald (mock drivers, a real dqlite database, the real API app) whose cluster layer is a double:
this server is member "a"; the other members are `nodes` rows, and member "b" is a small HTTP app
on loopback that records what reaches it (the forward goes there over plain HTTP instead of the
cluster TLS). Texts and shapes are LXD 5.0.2's, as a 3-member LXD cluster here answered them."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp import web

from corral.cluster import render
from helpers import Response, UnixConn, free_port
from inproc import Harness


class _Session:
    """What forward.proxy uses of the peer session, over plain HTTP to the test's fake members."""

    def __init__(self):
        self._s = None

    def request(self, method, url, **kw):
        if self._s is None:
            self._s = aiohttp.ClientSession()
        return self._s.request(method, url.replace("https://", "http://", 1), **kw)

    async def close(self):
        if self._s is not None:
            await self._s.close()


class _Peer:
    def __init__(self):
        self.s = _Session()

    def session(self):
        return self.s


class FakeCluster:
    """state.cluster as corral/cluster/membership.py's Cluster presents it (what the API and the
    placement read of it), clustered from the start as member "a" (nodes row 1)."""

    def __init__(self, state):
        self.state = state
        self.clustered = False
        self.server_name = "none"
        self.member_id = 1
        self.address = ""
        self.peer = _Peer()

    async def raft_roles(self):
        return {1: "voter"}

    async def leader_address(self):
        return self.address

    async def is_leader(self):
        return True

    async def notify_all(self, method, path, body=None):
        return {}

    def online(self, m):
        threshold = float(self.state.config.get("cluster.offline_threshold") or 20)
        return m["id"] == self.member_id or render.online(m["heartbeat"], threshold, datetime.now(timezone.utc))

    async def member_address(self, name):
        async with self.state.db.session() as tx:
            r = await tx.fetchone("SELECT address FROM nodes WHERE name = ?", [name])
        return r["address"]


class Remote:
    """Member "b": answers every request as a member would answer a create it was given, and
    records it (method, path with query, JSON body, the forwarded header)."""

    def __init__(self, h: Harness):
        self.h = h
        self.seen: list[tuple] = []
        self.runner = None
        self.port = 0

    async def _handle(self, request: web.Request):
        body = await request.read()
        if request.content_type == "application/octet-stream":
            body = {"raw": body, "name": request.headers.get("X-LXD-name")}
        else:
            body = json.loads(body) if body else None
        self.seen.append((request.method, request.path_qs, body, request.headers.get("X-Corral-Forwarded")))
        op = {"id": "0f0f", "class": "task", "description": "Creating instance", "status": "Running",
              "location": "b"}
        return web.json_response({"type": "async", "status": "Operation created", "status_code": 100,
                                  "operation": "/1.0/operations/0f0f", "error_code": 0, "error": "", "metadata": op},
                                 status=202, headers={"Location": "/1.0/operations/0f0f"})

    async def start(self):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self):
        if self.runner is not None:
            await self.runner.cleanup()


def now_text(delta: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_member(h: Harness, name: str, address: str, *, heartbeat: float = 0, state: int = 0) -> int:
    row = h.sql("SELECT schema, api_extensions FROM nodes WHERE id = 1")[0]
    mid, _ = h.sql("INSERT INTO nodes (name, description, address, schema, api_extensions, heartbeat, state, arch) "
                   "VALUES (?, '', ?, ?, ?, ?, ?, 2)",
                   [name, address, row["schema"], row["api_extensions"], now_text(heartbeat), state])
    h.sql("INSERT INTO nodes_cluster_groups (node_id, group_id) VALUES (?, 1)", [mid])
    return mid


@pytest.fixture
def h():
    harness = Harness(FakeCluster)
    try:
        yield harness.start()
    finally:
        harness.run(harness.cluster.peer.s.close())
        harness.stop()


def cluster(h: Harness) -> Remote:
    """Member a (this server), b (the recording app) and c (a row only, at an address nothing serves)."""
    remote = Remote(h)
    h.run(remote.start())
    h.sql("UPDATE nodes SET name = 'a', address = '10.1.0.1:8443' WHERE id = 1")
    h.cluster.clustered, h.cluster.server_name, h.cluster.address = True, "a", "10.1.0.1:8443"
    add_member(h, "b", f"127.0.0.1:{remote.port}")
    add_member(h, "c", f"127.0.0.1:{free_port()}")
    return remote


@pytest.fixture
def remote(h):
    r = cluster(h)
    yield r
    h.run(r.stop())


def add_instance(h: Harness, name: str, node_id: int) -> None:
    h.sql("INSERT INTO instances (node_id, name, architecture, type, project_id, ephemeral, stateful, "
          "creation_date) VALUES (?, ?, 2, 0, (SELECT id FROM projects WHERE name = 'default'), 0, 0, ?)",
          [node_id, name, now_text()])


def set_member(h: Harness, name: str, key: str, value: str) -> None:
    """`lxc cluster set NAME KEY VALUE`: the member as shown, its config changed, PUT back."""
    m = h.get(f"/1.0/cluster/members/{name}").metadata
    body = {k: m[k] for k in ("roles", "failure_domain", "description", "config", "groups")}
    body["config"][key] = value
    r = h.request("PUT", f"/1.0/cluster/members/{name}", body)
    assert r.status == 200, r.body


def error(r: Response) -> tuple[int, str]:
    assert r.json["type"] == "error" and r.json["error_code"] == r.status, r.body
    return r.status, r.json["error"]


def events(h: Harness):
    listener = h.call(h.d.events.listen, ["lifecycle"], None)

    def drain():
        out = []
        while not listener.queue.empty():
            out.append(listener.queue.get_nowait()["metadata"])
        return out
    return lambda: h.call(drain)


# ---- not clustered --------------------------------------------------------------------------------

def test_standalone_has_no_groups_and_takes_no_target(h):
    for method, path, body in (("GET", "/1.0/cluster/groups", None), ("GET", "/1.0/cluster/groups?recursion=1", None),
                               ("POST", "/1.0/cluster/groups", {"name": "x"}),
                               ("GET", "/1.0/cluster/groups/default", None),
                               ("PUT", "/1.0/cluster/groups/default", {}),
                               ("PATCH", "/1.0/cluster/groups/default", {}),
                               ("POST", "/1.0/cluster/groups/x", {"name": "y"}),
                               ("DELETE", "/1.0/cluster/groups/x", None)):
        assert error(h.request(method, path, body)) == (400, "This server is not clustered"), (method, path)
    for target in ("foo", "@foo", "none"):
        r = h.request("POST", f"/1.0/instances?target={target}", {"name": "c1", "source": {"type": "none"}})
        assert error(r) == (400, "Target only allowed when clustered")
    assert h.sql("SELECT name FROM instances") == []


# ---- groups ---------------------------------------------------------------------------------------

def test_default_group_and_listing(h, remote):
    assert h.get("/1.0/cluster/groups").metadata == ["/1.0/cluster/groups/default"]
    assert h.get("/1.0/cluster/groups?recursion=1").metadata == \
        [{"description": "Default cluster group", "members": ["a", "b", "c"], "name": "default"}]
    r = h.get("/1.0/cluster/groups/default")
    assert r.metadata == {"description": "Default cluster group", "members": ["a", "b", "c"], "name": "default"}
    assert r.headers["ETag"].startswith('"')
    # a pending member (accepted, not joined) is not listed
    mid = add_member(h, "d", "10.1.0.4:8443", state=1)
    assert h.get("/1.0/cluster/groups/default").metadata["members"] == ["a", "b", "c"]
    h.sql("DELETE FROM nodes WHERE id = ?", [mid])


def test_create_with_lxd_texts(h, remote):
    r = h.request("POST", "/1.0/cluster/groups", {"name": "gpu", "description": "G"})
    assert r.status == 201 and r.headers["Location"] == "/1.0/cluster/groups/gpu", r.body
    assert r.json["metadata"] is None
    assert error(h.request("POST", "/1.0/cluster/groups", {"name": "gpu"})) == (409, "This cluster group already exists")
    assert error(h.request("POST", "/1.0/cluster/groups", {"name": ""})) == (400, "No name provided")
    assert error(h.request("POST", "/1.0/cluster/groups", {"name": "a/b"})) == \
        (400, "Cluster group names may not contain slashes")
    assert error(h.request("POST", "/1.0/cluster/groups", {"name": "x", "members": ["nope"]})) == \
        (404, "Failed to get node info: Cluster member not found")
    assert error(h.request("POST", "/1.0/cluster/groups", {"name": 3})) == \
        (400, "json: cannot unmarshal number into Go struct field ClusterGroupsPost.name of type string")
    assert error(h.request("GET", "/1.0/cluster/groups/x")) == (404, "Cluster group not found")
    r = h.request("POST", "/1.0/cluster/groups", {"name": "with", "description": "d", "members": ["b", "b"]})
    assert r.status == 201
    assert h.get("/1.0/cluster/groups/with").metadata == {"description": "d", "members": ["b"], "name": "with"}
    assert h.get("/1.0/cluster/groups").metadata == \
        ["/1.0/cluster/groups/default", "/1.0/cluster/groups/gpu", "/1.0/cluster/groups/with"]
    assert h.get("/1.0/cluster/members/b").metadata["groups"] == ["default", "with"]


def test_events_of_every_change(h, remote):
    seen = events(h)
    h.request("POST", "/1.0/cluster/groups", {"name": "gpu"})
    h.request("PUT", "/1.0/cluster/groups/gpu", {"description": "x", "members": ["b"]})
    h.request("POST", "/1.0/cluster/groups/gpu", {"name": "gpu2"})
    h.request("PUT", "/1.0/cluster/groups/gpu2", {"description": "x", "members": []})
    h.request("DELETE", "/1.0/cluster/groups/gpu2")
    got = seen()
    assert got[0]["requestor"]["protocol"] == "unix", got[0]
    got = [(e["action"], e["source"], e.get("context")) for e in got]
    assert got == [("cluster-group-created", "/1.0/cluster/groups/gpu", None),
                   ("cluster-group-updated", "/1.0/cluster/groups/gpu", {"description": "x", "members": ["b"]}),
                   ("cluster-group-renamed", "/1.0/cluster/groups/gpu2", {"old_name": "gpu"}),
                   ("cluster-group-updated", "/1.0/cluster/groups/gpu2", {"description": "x", "members": []}),
                   ("cluster-group-deleted", "/1.0/cluster/groups/gpu2", None)]


def test_put_patch_and_etag(h, remote):
    h.request("POST", "/1.0/cluster/groups", {"name": "gpu", "description": "G"})
    assert h.request("PUT", "/1.0/cluster/groups/gpu", {"description": "GPUs", "members": ["b", "c"]}).status == 200
    r = h.get("/1.0/cluster/groups/gpu")
    assert r.metadata == {"description": "GPUs", "members": ["b", "c"], "name": "gpu"}
    etag = r.headers["ETag"]
    # an unknown member: nothing changed
    assert error(h.request("PUT", "/1.0/cluster/groups/gpu", {"description": "x", "members": ["b", "nope"]})) == \
        (404, "Failed to get node info: Cluster member not found")
    assert h.get("/1.0/cluster/groups/gpu").headers["ETag"] == etag
    # PATCH keeps what it does not send
    assert h.request("PATCH", "/1.0/cluster/groups/gpu", {"description": "patched"}).status == 200
    assert h.get("/1.0/cluster/groups/gpu").metadata["members"] == ["b", "c"]
    assert h.request("PATCH", "/1.0/cluster/groups/gpu", {"members": ["a"]}).status == 200
    assert h.get("/1.0/cluster/groups/gpu").metadata == {"description": "patched", "members": ["a"], "name": "gpu"}
    # PUT replaces: no description sent is an empty one
    assert h.request("PUT", "/1.0/cluster/groups/gpu", {"members": ["a"]}).status == 200
    assert h.get("/1.0/cluster/groups/gpu").metadata["description"] == ""
    # If-Match
    stale = h.request("PUT", "/1.0/cluster/groups/gpu", {"members": []}, headers={"If-Match": etag})
    assert error(stale) == (412, "ETag doesn't match")
    cur = h.get("/1.0/cluster/groups/gpu").headers["ETag"]
    assert h.request("PUT", "/1.0/cluster/groups/gpu", {"members": []}, headers={"If-Match": cur}).status == 200
    for method in ("PUT", "PATCH"):
        assert error(h.request(method, "/1.0/cluster/groups/nosuch", {})) == (404, "Cluster group not found")


def test_a_member_keeps_at_least_one_group(h, remote):
    h.request("POST", "/1.0/cluster/groups", {"name": "gpu", "members": ["c"]})
    # c leaves default (it is in gpu): allowed
    assert h.request("PUT", "/1.0/cluster/groups/default",
                     {"description": "Default cluster group", "members": ["a", "b"]}).status == 200
    assert h.get("/1.0/cluster/members/c").metadata["groups"] == ["gpu"]
    # taking c out of gpu now would leave it in no group (LXD 5.0.2 allows that; later LXD and Corral refuse)
    assert error(h.request("PUT", "/1.0/cluster/groups/gpu", {"members": []})) == \
        (400, "Cannot remove c from group as member needs to belong to at least one group")
    assert h.get("/1.0/cluster/groups/gpu").metadata["members"] == ["c"]
    # ... and through the member itself (lxc cluster group remove / assign)
    m = h.get("/1.0/cluster/members/c").metadata
    body = {k: m[k] for k in ("roles", "failure_domain", "description", "config")}
    assert error(h.request("PUT", "/1.0/cluster/members/c", dict(body, groups=[]))) == \
        (400, "Cluster members need to belong to at least one group")
    assert h.request("PUT", "/1.0/cluster/members/c", dict(body, groups=["gpu", "default"])).status == 200
    assert h.get("/1.0/cluster/groups/default").metadata["members"] == ["a", "b", "c"]
    assert error(h.request("PUT", "/1.0/cluster/members/c", dict(body, groups=["nosuch"]))) == \
        (404, "Update cluster groups: Failed to add member to cluster group: Failed to get cluster group ID: "
              "Cluster group not found")
    # a group with members can't be deleted
    assert error(h.request("DELETE", "/1.0/cluster/groups/gpu")) == (400, "Only empty cluster groups can be removed")
    assert h.request("PUT", "/1.0/cluster/groups/gpu", {"members": []}).status == 200
    assert h.request("DELETE", "/1.0/cluster/groups/gpu").status == 200
    assert error(h.request("GET", "/1.0/cluster/groups/gpu")) == (404, "Cluster group not found")
    assert h.get("/1.0/cluster/members/c").metadata["groups"] == ["default"]


def test_rename_and_delete_with_lxd_texts(h, remote):
    h.request("POST", "/1.0/cluster/groups", {"name": "gpu", "members": ["b"]})
    r = h.request("POST", "/1.0/cluster/groups/gpu", {"name": "gpu2"})
    assert r.status == 201 and r.headers["Location"] == "/1.0/cluster/groups/gpu2"
    assert h.get("/1.0/cluster/groups/gpu2").metadata["members"] == ["b"]
    assert h.get("/1.0/cluster/members/b").metadata["groups"] == ["default", "gpu2"]
    assert error(h.request("POST", "/1.0/cluster/groups/gpu2", {"name": "default"})) == \
        (409, 'Name "default" already in use')
    assert error(h.request("POST", "/1.0/cluster/groups/default", {"name": "zzz"})) == \
        (403, 'The "default" group cannot be renamed')
    assert error(h.request("POST", "/1.0/cluster/groups/nosuch", {"name": "zz"})) == (404, "Cluster group not found")
    assert error(h.request("POST", "/1.0/cluster/groups/gpu2", {"name": ""})) == (400, "No name provided")
    assert error(h.request("DELETE", "/1.0/cluster/groups/default")) == \
        (403, "The 'default' cluster group cannot be deleted")
    assert error(h.request("DELETE", "/1.0/cluster/groups/nosuch")) == (404, "Cluster group not found")


# ---- placement ------------------------------------------------------------------------------------

CREATE = {"name": "c1", "source": {"type": "none"}}


def test_create_is_forwarded_to_the_target_member(h, remote):
    r = h.request("POST", "/1.0/instances?target=b", CREATE)
    assert r.status == 202 and r.headers["Location"] == "/1.0/operations/0f0f", r.body
    assert r.json["metadata"]["location"] == "b"
    assert remote.seen == [("POST", "/1.0/instances?target=b", CREATE, "1")]
    # a group target: the other query parameters ride along, the target becomes the chosen member
    remote.seen.clear()
    add_instance(h, "x1", 1)   # a holds one, b and c none: b (the lower id of equals)
    r = h.request("POST", "/1.0/instances?project=default&target=%40default", CREATE)
    assert r.status == 202, r.body
    assert remote.seen == [("POST", "/1.0/instances?project=default&target=b", CREATE, "1")]
    assert h.sql("SELECT name FROM instances") == [{"name": "x1"}]


def test_scheduler_without_target(h, remote):
    # c is at an address nothing answers: make it the busiest so it is never the pick
    h.sql("UPDATE nodes SET heartbeat = ? WHERE name = 'c'", [now_text(-3600)])   # and offline
    # a holds one instance, b none: b is the pick
    add_instance(h, "x1", 1)
    r = h.request("POST", "/1.0/instances", CREATE)
    assert r.status == 202, r.body
    assert remote.seen == [("POST", "/1.0/instances?target=b", CREATE, "1")]
    remote.seen.clear()
    # b manual: only by name; the pick is a (here: the local create, which has no pool)
    set_member(h, "b", "scheduler.instance", "manual")
    r = h.request("POST", "/1.0/instances", CREATE)
    assert remote.seen == [] and r.status == 400, r.body
    assert "root disk" in r.json["error"]
    r = h.request("POST", "/1.0/instances?target=b", CREATE)
    assert r.status == 202 and len(remote.seen) == 1
    remote.seen.clear()
    # b group-only: targeted through its group, not otherwise
    set_member(h, "b", "scheduler.instance", "group")
    h.request("POST", "/1.0/cluster/groups", {"name": "gpu", "members": ["b"]})
    h.request("POST", "/1.0/instances", CREATE)
    assert remote.seen == []
    assert h.request("POST", "/1.0/instances?target=@gpu", CREATE).status == 202
    assert remote.seen[0][1] == "/1.0/instances?target=b"
    remote.seen.clear()
    # evacuated b: never picked, refused by name
    set_member(h, "b", "scheduler.instance", "all")
    h.sql("UPDATE nodes SET state = 2 WHERE name = 'b'")
    assert error(h.request("POST", "/1.0/instances?target=@gpu", CREATE)) == \
        (400, "No suitable cluster member could be found")
    assert error(h.request("POST", "/1.0/instances?target=b", CREATE)) == (403, "Cluster member is evacuated")
    assert remote.seen == []
    assert h.sql("SELECT name FROM instances") == [{"name": "x1"}]


def test_bad_targets_create_nothing(h, remote):
    cases = {"nosuch": (404, "Cluster member not found"),
             "@nosuch": (400, 'Cluster group "nosuch" doesn\'t exist')}
    for target, want in cases.items():
        assert error(h.request("POST", f"/1.0/instances?target={target}", CREATE)) == want, target
    h.sql("UPDATE nodes SET heartbeat = ? WHERE name = 'c'", [now_text(-3600)])
    assert error(h.request("POST", "/1.0/instances?target=c", CREATE)) == (400, "Target cluster member is offline")
    # a body that does not decode is refused first, as LXD does
    r = h.request("POST", "/1.0/instances?target=nosuch", {"name": 3})
    assert error(r) == (400, 'Invalid value for field "name": expected string')
    assert remote.seen == [] and h.sql("SELECT name FROM instances") == []


def test_project_cluster_group_restrictions(h, remote):
    h.request("POST", "/1.0/cluster/groups", {"name": "gpu", "members": ["b"]})
    r = h.request("POST", "/1.0/projects", {"name": "p1", "config": {"restricted": "true",
                                                                      "restricted.cluster.groups": "gpu"}})
    assert r.status in (200, 201), r.body
    assert error(h.request("POST", "/1.0/instances?project=p1&target=a", CREATE)) == \
        (403, "Project isn't allowed to use this cluster member")
    assert error(h.request("POST", "/1.0/instances?project=p1&target=@default", CREATE)) == \
        (403, "Project isn't allowed to use this cluster group")
    assert remote.seen == []
    assert h.request("POST", "/1.0/instances?project=p1", CREATE).status == 202
    assert remote.seen == [("POST", "/1.0/instances?project=p1&target=b", CREATE, "1")]
    assert h.request("POST", "/1.0/instances?project=p1&target=b", CREATE).status == 202
    assert h.sql("SELECT name FROM instances") == []


def test_a_client_cannot_pass_for_a_forwarding_member(h, remote):
    # only a request from another member (a cluster peer) with the forwarded header is created here
    # whatever its target says; a local client sending the header is placed as any other
    r = h.request("POST", "/1.0/instances?target=b", CREATE, headers={"X-Corral-Forwarded": "1"})
    assert r.status == 202 and len(remote.seen) == 1, r.body


def test_unreachable_member(h, remote):
    # c is online by its heartbeat but nothing answers at its address: a clear error, nothing made
    add_instance(h, "x1", 1)
    r = h.request("POST", "/1.0/instances?target=c", CREATE)
    assert r.status == 503 and "Failed to forward the request to cluster member 127.0.0.1:" in r.json["error"], r.body
    assert h.sql("SELECT name FROM instances") == [{"name": "x1"}]


def test_scheduler_instance_is_a_checked_member_key(h, remote):
    m = h.get("/1.0/cluster/members/b").metadata
    body = {k: m[k] for k in ("roles", "failure_domain", "description", "groups")}
    for value in ("all", "manual", "group"):
        assert h.request("PUT", "/1.0/cluster/members/b", dict(body, config={"scheduler.instance": value})).status == 200
        assert h.get("/1.0/cluster/members/b").metadata["config"] == {"scheduler.instance": value}
    for config, text in (({"scheduler.instance": "bogus"}, 'Invalid cluster configuration key "scheduler.instance" value'),
                         ({"scheduler.other": "x"}, 'Invalid cluster configuration key "scheduler.other"')):
        assert error(h.request("PUT", "/1.0/cluster/members/b", dict(body, config=config))) == (400, text)
    assert h.request("PUT", "/1.0/cluster/members/b", dict(body, config={"user.rack": "r1"})).status == 200
    assert h.get("/1.0/cluster/members/b").metadata["config"] == {"user.rack": "r1"}
    # `lxc cluster unset` sends the key empty: it goes
    assert h.request("PUT", "/1.0/cluster/members/b", dict(body, config={"user.rack": "",
                                                                          "scheduler.instance": ""})).status == 200
    assert h.get("/1.0/cluster/members/b").metadata["config"] == {}


def raw_post(h: Harness, path: str, data: bytes, headers: dict) -> Response:
    conn = UnixConn(h.socket, timeout=30)
    try:
        conn.request("POST", path, body=data, headers=headers)
        r = conn.getresponse()
        return Response(r.status, r.headers, r.read())
    finally:
        conn.close()


def test_a_backup_import_goes_to_its_target(h, remote):
    data = b"\x1f\x8b not really a backup, streamed as it came" * 1000
    r = raw_post(h, "/1.0/instances?target=b", data, {"Content-Type": "application/octet-stream", "X-LXD-name": "imp"})
    assert r.status == 202, r.body
    assert remote.seen == [("POST", "/1.0/instances?target=b", {"raw": data, "name": "imp"}, "1")]
    # to an unknown member: refused before the body is read, nothing imported
    r = raw_post(h, "/1.0/instances?target=nosuch", data, {"Content-Type": "application/octet-stream"})
    assert error(r) == (404, "Cluster member not found")
    assert h.sql("SELECT name FROM instances") == []
