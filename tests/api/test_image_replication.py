"""Images in a cluster (corral/image/replication.py) against an in-process corrald (mock drivers, a
real dqlite database, the real API app) whose cluster layer is a double: this server is member 1 of
a cluster whose other members are `nodes` rows; a "holder" member is a small HTTPS server on
loopback serving an image's files as /1.0/images/<fp>/export does, and calls to the other members
are recorded (and can be made to fail). What is real: the images_nodes bookkeeping, the fetch
(fingerprint check, staging, one fetch per fingerprint), minimal replica arithmetic, delete checks."""
from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import ssl
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp import web

from corral.cluster import render
from corral.db.queries import images as qi
from corral.db.queries import nodes as qnodes
from corral.errors import CorralError, NotFound
from corral.pki import certs
from helpers import free_port
from inproc import Harness


def now_text(delta: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakePeer:
    """cluster.peer: `call` and `request` recorded (per-address failures on demand); `session` a
    plain aiohttp session that accepts the holder's self-signed certificate."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.fail: dict[str, str] = {}          # address -> error text of its calls
        self.unreachable: set[str] = set()      # addresses whose `request` fails (connectivity)
        self._session = None

    async def call(self, address, method, path, body=None, timeout=10.0):
        self.calls.append((address, method, path, body))
        if address in self.fail:
            raise CorralError(self.fail[address])
        return None

    async def request(self, address, method, path, body=None, timeout=2.0, notify=False):
        self.calls.append((address, method, path, body))
        if address in self.unreachable:
            raise CorralError(f"{address}: connection refused")
        return 200, {"type": "sync", "metadata": {}}

    def session(self):
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False))
        return self._session


class FakeCluster:
    def __init__(self, state):
        self.state = state
        self.clustered = True
        self.server_name = "m1"
        self.member_id = 1
        self.address = "127.0.0.1:1"
        self.peer = FakePeer()

    async def members(self):
        async with self.state.db.session() as tx:
            return await qnodes.members(tx)

    def online(self, m):
        return m["id"] == self.member_id or render.online(m["heartbeat"], 20, datetime.now(timezone.utc))

    async def member_address(self, name):
        for m in await self.members():
            if m["name"] == name:
                return m["address"]
        raise NotFound("Cluster member not found")

    async def is_leader(self):
        return True


class Holder:
    """A member holding image files: GET /1.0/images/<fp>/export over HTTPS on loopback."""

    def __init__(self, h: Harness):
        self.h = h
        self.files: dict[str, list[tuple[str, bytes]]] = {}   # fp -> [(part name, bytes)]
        self.gets = 0
        self.delay = 0.0
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        crt, key = certs.generate("holder")
        d = os.path.join(h.dir, "holder")
        os.makedirs(d)
        self.crt, self.key = os.path.join(d, "crt"), os.path.join(d, "key")
        open(self.crt, "wb").write(crt)
        open(self.key, "wb").write(key)
        self.runner = None

    async def _export(self, request):
        self.gets += 1
        await asyncio.sleep(self.delay)
        parts = self.files.get(request.match_info["fp"])
        if parts is None:
            return web.json_response({"type": "error", "error": "Image not found", "error_code": 404}, status=404)
        if len(parts) == 1:
            return web.Response(body=parts[0][1], content_type="application/octet-stream")
        with aiohttp.MultipartWriter("form-data") as mp:
            for name, data in parts:
                p = mp.append(data, {"Content-Type": "application/octet-stream"})
                p.set_content_disposition("form-data", name=name, filename=name)
        return web.Response(body=mp, content_type=f"multipart/form-data; boundary={mp.boundary}")

    async def start(self):
        app = web.Application()
        app.router.add_get("/1.0/images/{fp}/export", self._export)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.crt, self.key)
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=ctx).start()

    async def stop(self):
        await self.runner.cleanup()


@pytest.fixture
def env():
    h = Harness(FakeCluster).start()
    holder = Holder(h)
    try:
        h.state.images.cluster = h.cluster
        h.run(holder.start())
        h.sql("UPDATE nodes SET name = 'm1', address = '127.0.0.1:1' WHERE id = 1")
        yield h, holder
    finally:
        try:
            h.run(holder.stop())
            if h.cluster.peer._session is not None:
                h.run(h.cluster.peer._session.close())
        finally:
            h.stop()


def add_member(h, name, address, online=True) -> int:
    row = h.sql("SELECT schema, api_extensions FROM nodes WHERE id = 1")[0]
    mid, _ = h.sql("INSERT INTO nodes (name, description, address, schema, api_extensions, heartbeat, state, arch) "
                   "VALUES (?, '', ?, ?, ?, ?, 0, 2)",
                   [name, address, row["schema"], row["api_extensions"], now_text(0 if online else -3600)])
    return mid


def new_image(h, data: bytes, *, local: bool, holders=(), project="default") -> str:
    """An image record of `data` (a unified image's bytes; its fingerprint their sha256), held by
    this member (`local`, files written) and by the members `holders`."""
    fp = hashlib.sha256(data).hexdigest()
    row = {"fingerprint": fp, "filename": "x.tar.gz", "size": len(data), "public": False, "architecture": "x86_64",
           "created_at": now_text(), "expires_at": now_text(), "uploaded_at": now_text(), "last_used_at": now_text(),
           "properties": {}, "profiles": ["default"]}

    async def go():
        async with h.state.db.transaction() as tx:
            await qi.create(tx, project, row, local=local)
    h.run(go())
    for mid in holders:
        h.sql("INSERT INTO images_nodes (image_id, node_id) SELECT id, ? FROM images WHERE fingerprint = ?", [mid, fp])
    if local:
        os.makedirs(h.state.images.dir, exist_ok=True)
        with open(h.state.images.original_paths(fp)[0], "wb") as f:
            f.write(data)
    return fp


def holders(h, fp) -> list[int]:
    async def go():
        async with h.state.db.session() as tx:
            return await qi.holders(tx, fp)
    return h.run(go())


def leftovers(h) -> list[str]:
    d = h.state.images.dir
    return sorted(n for n in os.listdir(d) if n.startswith(".")) if os.path.isdir(d) else []


# ---- on demand ------------------------------------------------------------------------------------

def test_fetched_once_from_a_holder_for_concurrent_needs(env):
    h, holder = env
    m2 = add_member(h, "m2", holder.address)
    data = secrets.token_bytes(300_000)
    fp = new_image(h, data, local=False, holders=[m2])
    holder.files[fp] = [("image", data)]
    holder.delay = 0.3
    images = h.state.images
    assert holders(h, fp) == [m2] and not images.has_files(fp)

    async def three():
        await asyncio.gather(*(images.ensure_local("default", fp) for _ in range(3)))
    h.run(three())
    assert holder.gets == 1
    assert holders(h, fp) == [1, m2]
    with open(images.original_paths(fp)[0], "rb") as f:
        assert f.read() == data
    assert leftovers(h) == []
    h.run(images.ensure_local("default", fp))   # held: nothing fetched again
    assert holder.gets == 1


def test_a_split_image_comes_as_two_files(env):
    h, holder = env
    m2 = add_member(h, "m2", holder.address)
    meta, rootfs = secrets.token_bytes(1000), secrets.token_bytes(5000)
    fp = hashlib.sha256(meta + rootfs).hexdigest()
    new_image(h, meta + rootfs, local=False, holders=[m2])
    holder.files[fp] = [("metadata", meta), ("rootfs", rootfs)]
    h.run(h.state.images.ensure_local("default", fp))
    m, r = h.state.images.original_paths(fp)
    assert open(m, "rb").read() == meta and open(r, "rb").read() == rootfs
    assert holders(h, fp) == [1, m2]


def test_wrong_bytes_are_refused_and_nothing_is_kept(env):
    h, holder = env
    m2 = add_member(h, "m2", holder.address)
    data = secrets.token_bytes(1000)
    fp = new_image(h, data, local=False, holders=[m2])
    holder.files[fp] = [("image", data + b"x")]
    with pytest.raises(CorralError) as e:
        h.run(h.state.images.ensure_local("default", fp))
    assert "Image fingerprint doesn't match" in e.value.message and fp in e.value.message
    assert holders(h, fp) == [m2] and not h.state.images.has_files(fp) and leftovers(h) == []


def test_no_online_holder_is_lxds_error(env):
    h, holder = env
    m2 = add_member(h, "m2", holder.address, online=False)
    fp = new_image(h, b"abc", local=False, holders=[m2])
    holder.files[fp] = [("image", b"abc")]
    with pytest.raises(CorralError) as e:
        h.run(h.state.images.ensure_local("default", fp))
    assert e.value.message == f'Locate image "{fp}" in the cluster: image not available on any online node'
    assert holder.gets == 0


def test_files_left_here_are_checked_and_recorded(env):
    h, holder = env
    m2 = add_member(h, "m2", holder.address)
    data = b"left here"
    fp = new_image(h, data, local=True, holders=[m2])
    h.sql(f"DELETE FROM images_nodes WHERE node_id = 1")
    h.run(h.state.images.ensure_local("default", fp))
    assert holder.gets == 0 and holders(h, fp) == [1, m2]


def test_export_is_forwarded_to_a_holder(env):
    h, holder = env
    m2 = add_member(h, "m2", holder.address)
    data = secrets.token_bytes(2000)
    fp = new_image(h, data, local=False, holders=[m2])
    holder.files[fp] = [("image", data)]
    r = h.get(f"/1.0/images/{fp}/export")
    assert r.status == 200 and r.body == data and holder.gets == 1
    assert not h.state.images.has_files(fp)   # answered by the holder, not copied here


def test_member_endpoints_refuse_clients(env):
    h, _ = env
    fp = new_image(h, b"abc", local=True)
    for method in ("POST", "DELETE"):
        r = h.request(method, f"/internal/images/{fp}", {"project": "default"} if method == "POST" else None)
        assert r.status == 403, r.body
    assert holders(h, fp) == [1] and h.state.images.has_files(fp)


# ---- replicas -------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting,asked", [("3", 2), ("1", 0), ("-1", 3), ("2", 1)])
def test_minimal_replica_asks_online_members_without_the_image(env, setting, asked):
    h, _ = env
    online = [add_member(h, f"m{i}", f"127.0.0.{i}:8443") for i in (2, 3, 4)]
    add_member(h, "m5", "127.0.0.5:8443", online=False)
    h.set_config({"cluster.images_minimal_replica": setting})
    fp = new_image(h, b"replicate me", local=True)
    h.run(h.state.images.replicate("default", fp))
    calls = [c for c in h.cluster.peer.calls if c[1] == "POST"]
    assert len(calls) == asked
    assert all(c[0] in {f"127.0.0.{i}:8443" for i in (2, 3, 4)} for c in calls)   # never the offline m5
    assert all(c[2] == f"/internal/images/{fp}" and c[3] == {"project": "default", "holder": "127.0.0.1:1"}
               for c in calls)
    assert len({c[0] for c in calls}) == asked and online


def test_holders_count_towards_the_replica(env):
    h, _ = env
    m2 = add_member(h, "m2", "127.0.0.2:8443")
    add_member(h, "m3", "127.0.0.3:8443")
    fp = new_image(h, b"held twice", local=True, holders=[m2])
    h.set_config({"cluster.images_minimal_replica": "2"})
    h.run(h.state.images.replicate("default", fp))
    assert h.cluster.peer.calls == []


def test_a_failed_copy_fails_the_sync_with_lxds_text(env):
    h, _ = env
    add_member(h, "m2", "127.0.0.2:8443")
    fp = new_image(h, b"copy fails", local=True)
    h.cluster.peer.fail["127.0.0.2:8443"] = "disk full"
    with pytest.raises(CorralError) as e:
        h.run(h.state.images.replicate("default", fp))
    assert e.value.message == 'Failed syncing image between nodes: Failed to copy image to "m2": disk full'


def test_replica_setting_is_validated_as_lxd(env):
    h, _ = env
    for bad, text in (("0", "Invalid value for image replica count"), ("-2", "Invalid value for image replica count"),
                      ("x", "Minimal image replica count is not a number")):
        r = h.request("PATCH", "/1.0", {"config": {"cluster.images_minimal_replica": bad}})
        assert r.status == 400 and text in r.json["error"], r.body


def test_a_new_record_of_a_held_fingerprint_keeps_its_holders(env):
    h, _ = env
    m2 = add_member(h, "m2", "127.0.0.2:8443")
    h.sql("INSERT INTO projects (name, description) VALUES ('p2', '')")
    fp = new_image(h, b"two projects", local=False, holders=[m2])
    new_image(h, b"two projects", local=True, project="p2")
    rows = h.sql("SELECT i.project_id AS p, n.node_id AS n FROM images_nodes n JOIN images i ON i.id = n.image_id "
                 "WHERE i.fingerprint = ? ORDER BY p, n", [fp])
    assert [(r["p"] > 1, r["n"]) for r in rows] == [(False, m2), (True, 1), (True, m2)]


# ---- deletion -------------------------------------------------------------------------------------

def test_delete_reaches_every_member(env):
    h, _ = env
    m2 = add_member(h, "m2", "127.0.0.2:8443")
    add_member(h, "m3", "127.0.0.3:8443")
    fp = new_image(h, b"delete everywhere", local=True, holders=[m2])
    h.run(h.state.images.delete_now("default", fp))
    deletes = sorted(c[0] for c in h.cluster.peer.calls if c[1] == "DELETE")
    assert deletes == ["127.0.0.2:8443", "127.0.0.3:8443"]   # every member, holder or not
    assert h.sql("SELECT id FROM images WHERE fingerprint = ?", [fp]) == []
    assert not h.state.images.has_files(fp)


def test_delete_with_a_member_down_changes_nothing(env):
    h, _ = env
    m2 = add_member(h, "m2", "127.0.0.2:8443")
    add_member(h, "m3", "127.0.0.3:8443", online=False)
    h.cluster.peer.unreachable.add("127.0.0.3:8443")
    fp = new_image(h, b"member down", local=True, holders=[m2])
    with pytest.raises(CorralError) as e:
        h.run(h.state.images.delete_now("default", fp))
    assert e.value.message == "peer node 127.0.0.3:8443 is down"
    assert not [c for c in h.cluster.peer.calls if c[1] == "DELETE"]
    assert holders(h, fp) == [1, m2] and h.state.images.has_files(fp)


def test_delete_failing_on_a_member_keeps_the_record(env):
    h, _ = env
    m2 = add_member(h, "m2", "127.0.0.2:8443")
    fp = new_image(h, b"peer fails", local=True, holders=[m2])
    h.cluster.peer.fail["127.0.0.2:8443"] = "busy"
    with pytest.raises(CorralError) as e:
        h.run(h.state.images.delete_now("default", fp))
    assert e.value.message == ("failed to notify peer 127.0.0.2:8443: Failed to delete image from peer node: busy")
    assert h.sql("SELECT id FROM images WHERE fingerprint = ?", [fp]) != [] and h.state.images.has_files(fp)


def test_deleting_one_project_of_two_stays_in_the_database(env):
    h, _ = env
    add_member(h, "m2", "127.0.0.2:8443")
    h.sql("INSERT INTO projects (name, description) VALUES ('p3', '')")
    fp = new_image(h, b"shared by projects", local=True)
    new_image(h, b"shared by projects", local=True, project="p3")
    h.run(h.state.images.delete_now("p3", fp))
    assert not h.cluster.peer.calls and h.state.images.has_files(fp) and holders(h, fp) == [1]


def test_a_peer_drops_its_rows_then_its_files(env):
    h, _ = env
    m2 = add_member(h, "m2", "127.0.0.2:8443")
    fp = new_image(h, b"drop here", local=True, holders=[m2])
    h.run(h.state.images.drop_local(fp))
    assert holders(h, fp) == [m2] and not h.state.images.has_files(fp)
    assert h.sql("SELECT id FROM images WHERE fingerprint = ?", [fp]) != []   # the record is the deleter's


def test_leftover_files_are_pruned_at_start(env):
    h, _ = env
    kept = new_image(h, b"kept", local=True)
    gone = new_image(h, b"gone", local=True)
    h.sql("DELETE FROM images_nodes WHERE image_id = (SELECT id FROM images WHERE fingerprint = ?)", [gone])
    stray = os.path.join(h.state.images.dir, "0" * 64 + ".rootfs")
    open(stray, "wb").close()
    assert sorted(h.run(h.state.images.prune_leftovers())) == sorted([gone, "0" * 64 + ".rootfs"])
    assert h.state.images.has_files(kept) and not os.path.exists(stray)


def test_a_member_removal_makes_the_leader_sync_now(env):
    h, _ = env
    add_member(h, "m2", "127.0.0.2:8443")
    h.set_config({"cluster.images_minimal_replica": "2"})
    fp = new_image(h, b"sync after removal", local=True)
    tasks = h.d.image_tasks
    h.call(tasks.start_watch)
    try:
        h.call(lambda: h.state.events.lifecycle("cluster-member-removed", "/1.0/cluster/members/m9"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not h.cluster.peer.calls:
            time.sleep(0.05)
        assert h.cluster.peer.calls == [("127.0.0.2:8443", "POST", f"/internal/images/{fp}",
                                         {"project": "default", "holder": "127.0.0.1:1"})]
    finally:
        h.run(tasks.stop())
