"""The cluster REST surface (corral/api/cluster.py) with LXD 5.0.2's answers, against an in-process
corrald (mock drivers, a real dqlite database, the real API app on a unix socket) whose cluster layer
is a small in-test double (FakeCluster) honouring the interface of corral/cluster/membership.py's
Cluster: the raft questions and the membership changes are its; what the API reads and writes in
the database, how it renders members, and the token and certificate machinery are the real ones.

Expected texts and shapes are those the real LXD 5.0.2 gave on this machine (a standalone server and
a two-member cluster in a private network namespace)."""
from __future__ import annotations

import hashlib
import os
import re
import ssl
import stat
import time
from datetime import datetime, timedelta, timezone

import pytest

from corral.cluster import certificate, tokens
from corral.db.queries import nodes as qnodes
from corral.https import HttpsListener
from corral.operations import Work
from corral.pki import certs
from helpers import Response, free_port, sample
from inproc import Harness

NOTIFIER = "lxd-cluster-notifier"


class FakeCluster:
    """state.cluster as corral/cluster/membership.py's Cluster presents it, without raft: `enable`
    makes this server member "a" (raft id 1, a voter and the leader); the other membership changes
    are recorded and applied to the `nodes` rows only."""

    def __init__(self, state):
        self.state = state
        self.clustered = False
        self.server_name = "none"
        self.member_id = 1
        self.address = ""
        self.roles: dict[int, str] = {}
        self.leader = ""
        self.calls: list[tuple] = []
        self.notify_errors: dict[str, str | None] = {}

    async def enable(self, server_name: str) -> None:
        self.calls.append(("enable", server_name))
        address = self.state.config.all()["core.https_address"]
        async with self.state.db.transaction() as tx:
            await tx.execute("UPDATE nodes SET name = ?, address = ? WHERE id = 1", [server_name, address])
        crt, key = certs.generate("cluster")
        certificate.install(self.state.paths, crt.decode(), key.decode())
        self.clustered, self.server_name, self.address = True, server_name, address
        self.roles, self.leader = {1: "voter"}, address

    def serving_cert(self) -> tuple[str, str]:
        """The pair the HTTPS listener serves: the cluster's once clustered (as Cluster.serving_cert)."""
        if self.clustered:
            return certificate.files(self.state.paths)
        return certs.ensure_server_cert(self.state.paths.root)

    def join_work(self, req: dict) -> Work:
        self.calls.append(("join", req))

        async def run(_op):
            return None
        return Work(description="Joining cluster", run=run, resources={"cluster": None})

    async def remove_member(self, name: str, force: bool) -> None:
        self.calls.append(("remove", name, force))
        async with self.state.db.transaction() as tx:
            await qnodes.delete(tx, name)

    async def rename_member(self, old: str, new: str) -> None:
        self.calls.append(("rename", old, new))
        async with self.state.db.transaction() as tx:
            await qnodes.rename(tx, old, new)

    async def raft_roles(self) -> dict[int, str]:
        self.calls.append(("raft_roles",))
        return dict(self.roles)

    async def leader_address(self) -> str:
        self.calls.append(("leader_address",))
        return self.leader

    async def is_leader(self) -> bool:
        return True

    async def notify_all(self, method: str, path: str, body=None) -> dict:
        self.calls.append(("notify_all", method, path, body))
        async with self.state.db.session() as tx:
            names = [m["name"] for m in await qnodes.members(tx) if m["id"] != self.member_id]
        return {n: self.notify_errors.get(n) for n in names}


@pytest.fixture
def h():
    harness = Harness(FakeCluster)
    try:
        yield harness.start()
    finally:
        harness.stop()


def error(r: Response) -> tuple[int, str]:
    assert r.json["type"] == "error" and r.json["error_code"] == r.status, r.body
    return r.status, r.json["error"]


def now_text(delta_seconds: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta_seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bootstrap(h: Harness, name: str = "a") -> None:
    h.set_config({"core.https_address": "10.1.0.1:8443"})
    r = h.request("PUT", "/1.0/cluster", {"server_name": name, "enabled": True})
    assert r.status == 202, r.body
    assert h.wait_op(r)["status"] == "Success"


def add_member(h: Harness, name: str, address: str, *, heartbeat: str | None = None, state: int = 0,
               group: bool = True, schema: int | None = None) -> int:
    row = h.sql("SELECT schema, api_extensions FROM nodes WHERE id = 1")[0]
    member_id, _ = h.sql("INSERT INTO nodes (name, description, address, schema, api_extensions, heartbeat, "
                         "state, arch) VALUES (?, '', ?, ?, ?, ?, ?, 2)",
                         [name, address, row["schema"] if schema is None else schema, row["api_extensions"],
                          heartbeat or now_text(), state])
    if group:
        h.sql("INSERT INTO nodes_cluster_groups (node_id, group_id) VALUES (?, 1)", [member_id])
    return member_id


# ---- a standalone server ------------------------------------------------------------------------

def test_standalone_answers_as_lxd(h):
    r = h.get("/1.0/cluster")
    assert r.status == 200 and r.headers["ETag"].startswith('"')
    assert r.metadata == {"server_name": "", "enabled": False, "member_config": []}
    assert set(r.metadata) == set(sample("cluster.json")["metadata"])
    for method, path in (("GET", "/1.0/cluster/members"), ("GET", "/1.0/cluster/members?recursion=1"),
                         ("GET", "/1.0/cluster/members/none"), ("PUT", "/1.0/cluster/members/none"),
                         ("PATCH", "/1.0/cluster/members/none"), ("DELETE", "/1.0/cluster/members/none")):
        assert error(h.request(method, path, {} if method in ("PUT", "PATCH") else None)) == \
            (400, "Server is not clustered"), (method, path)
    assert error(h.request("POST", "/1.0/cluster/members", {"server_name": "x"})) == \
        (400, "This server is not clustered")
    assert error(h.request("POST", "/1.0/cluster/members/none/state", {"action": "evacuate"})) == \
        (404, "Cluster member not found")
    # LXD 5.0.2 renames the standalone "none" row (its GET /1.0/cluster then claims to be clustered): refused
    assert error(h.request("POST", "/1.0/cluster/members/none", {"server_name": "y"})) == \
        (400, "Server is not clustered")
    assert h.sql("SELECT name FROM nodes")[0]["name"] == "none"
    # disabling a server that is not clustered: nothing to do
    assert h.request("PUT", "/1.0/cluster", {"enabled": False}).status == 200
    assert [c for c in h.cluster.calls if c[0] != "raft_roles"] == []


def test_put_cluster_checks_with_lxd_texts(h):
    assert error(h.request("PUT", "/1.0/cluster", {"server_name": "", "enabled": True})) == \
        (400, "ServerName is required when enabling clustering")
    assert error(h.request("PUT", "/1.0/cluster", {"server_name": "a", "enabled": False})) == \
        (400, "ServerName must be empty when disabling clustering")
    r = h.request("PUT", "/1.0/cluster", {"server_name": 3})
    assert error(r) == (400, "json: cannot unmarshal number into Go struct field ClusterPut.server_name of type string")
    # no address to cluster on
    assert error(h.request("PUT", "/1.0/cluster", {"server_name": "a", "enabled": True})) == \
        (500, 'Cannot use wildcard core.https_address "" for cluster.https_address. '
              'Please specify a new cluster.https_address or core.https_address')
    h.set_config({"core.https_address": "[::]:8443"})
    assert "wildcard core.https_address \"[::]:8443\"" in \
        error(h.request("PUT", "/1.0/cluster", {"server_name": "a", "enabled": True}))[1]
    # joining: the certificate and this member's address are needed first
    join = {"server_name": "b", "enabled": True, "cluster_address": "10.1.0.1:8443"}
    assert error(h.request("PUT", "/1.0/cluster", join)) == (400, "No target cluster member certificate provided")
    join["cluster_certificate"] = "PEM"
    assert error(h.request("PUT", "/1.0/cluster", join)) == (400, "No server address provided for this member")
    assert h.cluster.calls == []


def test_enable_is_an_operation_then_clustered(h):
    h.set_config({"core.https_address": "10.1.0.1:8443"})
    r = h.request("PUT", "/1.0/cluster", {"server_name": "a", "enabled": True})
    assert r.status == 202 and r.headers["Location"] == r.json["operation"]
    op = r.json["metadata"]
    assert (op["class"], op["description"], op["resources"], op["may_cancel"]) == \
        ("task", "Creating bootstrap node", {"cluster": None}, False)
    assert h.wait_op(r)["status"] == "Success"
    assert h.cluster.calls == [("enable", "a")]
    c = h.get("/1.0/cluster")
    assert c.metadata == {"server_name": "a", "enabled": True, "member_config": []}
    assert error(h.request("PUT", "/1.0/cluster", {"server_name": "a", "enabled": True})) == \
        (400, "This server is already clustered")
    join = {"server_name": "b", "enabled": True, "cluster_address": "10.1.0.2:8443",
            "cluster_certificate": "PEM", "server_address": "10.1.0.3:8443"}
    assert error(h.request("PUT", "/1.0/cluster", join)) == (400, "This server is already clustered")
    r = h.request("PUT", "/1.0/cluster", {"enabled": False})
    status, text = error(r)
    assert status == 501 and text.startswith("not implemented: disabling clustering on a cluster member")


def test_join_hands_lxd_request_to_the_cluster_layer(h):
    body = {"server_name": "b", "enabled": True, "cluster_address": "10.1.0.1:8443",
            "cluster_certificate": "-----BEGIN CERTIFICATE-----\n", "server_address": "10.1.0.2:8443",
            "cluster_password": "tok", "member_config": [{"entity": "storage-pool", "name": "default",
                                                         "key": "source", "value": "/srv"}]}
    r = h.request("PUT", "/1.0/cluster", body)
    assert r.status == 202 and r.json["metadata"]["description"] == "Joining cluster"
    assert h.wait_op(r)["status"] == "Success"
    (call,) = h.cluster.calls
    assert call[0] == "join"
    assert call[1] == {**body, "member_config": [{**body["member_config"][0], "description": ""}]}


# ---- members ------------------------------------------------------------------------------------

def test_members_rendered_as_lxd(h):
    bootstrap(h)
    b = add_member(h, "b", "10.1.0.2:8443")
    c = add_member(h, "c", "10.1.0.3:8443", heartbeat="2026-01-01T00:00:00Z")
    add_member(h, "d", "10.1.0.4:8443", state=qnodes.PENDING)       # accepted, not joined: not listed
    add_member(h, "e", "10.1.0.5:8443", state=qnodes.EVACUATED)
    add_member(h, "f", "10.1.0.6:8443", schema=1)                    # an older version than the cluster's
    h.cluster.roles = {1: "voter", b: "stand-by", c: "spare"}
    h.cluster.calls.clear()
    r = h.get("/1.0/cluster/members")
    assert r.metadata == [f"/1.0/cluster/members/{n}" for n in ("a", "b", "c", "e", "f")]
    ms = {m["server_name"]: m for m in h.get("/1.0/cluster/members?recursion=1").metadata}
    # the real LXD 5.0.2's member, field for field and in its order (a one-member cluster's leader)
    assert list(ms["a"].items()) == [
        ("roles", ["database-leader", "database"]), ("failure_domain", "default"), ("description", ""),
        ("config", {}), ("groups", ["default"]), ("server_name", "a"), ("url", "https://10.1.0.1:8443"),
        ("database", True), ("status", "Online"), ("message", "Fully operational"),
        ("architecture", "x86_64")]
    assert (ms["b"]["roles"], ms["b"]["database"], ms["b"]["status"]) == (["database-standby"], True, "Online")
    assert (ms["c"]["roles"], ms["c"]["database"], ms["c"]["status"]) == ([], False, "Offline")
    assert re.fullmatch(r"No heartbeat for (\d+h)?(\d+m)?[\d.]+s \(2026-01-01 00:00:00 \+0000 UTC\)",
                        ms["c"]["message"]), ms["c"]["message"]
    assert (ms["e"]["status"], ms["e"]["message"]) == ("Evacuated", "Unavailable due to maintenance")
    assert (ms["f"]["status"], ms["f"]["message"]) == ("Blocked", "Needs updating to newer version")
    one = h.get("/1.0/cluster/members/b")
    assert one.metadata == ms["b"] and one.headers["ETag"].startswith('"')
    assert error(h.get("/1.0/cluster/members/d")) == (404, "Cluster member not found")
    assert error(h.get("/1.0/cluster/members/zz")) == (404, "Cluster member not found")
    # reading members asks raft, and nothing else: no heartbeat, no notification
    assert {c[0] for c in h.cluster.calls} == {"raft_roles", "leader_address"}


def test_offline_follows_the_threshold(h):
    bootstrap(h)
    add_member(h, "b", "10.1.0.2:8443", heartbeat=now_text(-12))
    status = lambda: h.get("/1.0/cluster/members/b").metadata["status"]  # noqa: E731
    assert status() == "Online"                       # 12 s old, threshold 20 s
    h.set_config({"cluster.offline_threshold": "11"})
    assert status() == "Offline"
    h.sql("UPDATE nodes SET heartbeat = ? WHERE name = 'b'", [now_text()])
    assert status() == "Online"


def test_member_edit_checks_and_texts(h):
    bootstrap(h)
    url = "/1.0/cluster/members/a"
    etag = h.get(url).headers["ETag"]
    ok = {"roles": ["database-leader", "database"], "failure_domain": "default", "description": "",
          "config": {}, "groups": ["default"]}
    before = h.get(url).metadata
    cases = [
        ({**ok, "roles": []}, (400, 'The "database" role cannot be dropped at this time')),
        ({**ok, "groups": []}, (400, "Cluster members need to belong to at least one group")),
        ({**ok, "config": {"foo": "bar"}}, (400, 'Invalid cluster configuration key "foo"')),
        ({**ok, "config": {"scheduler.instance": "bad"}}, (400, 'Invalid cluster configuration key "scheduler.instance" value')),
        ({**ok, "roles": ["database", "foo"], "description": "new"}, (400, 'Update roles: Invalid cluster role "foo"')),
        ({**ok, "failure_domain": "", "description": "new"}, (400, "Update failure domain: Failure domain name can't be empty")),
        ({**ok, "groups": ["nogroup"], "failure_domain": "rack1", "config": {"user.x": "1"}},
         (404, "Update cluster groups: Failed to add member to cluster group: Failed to get cluster group ID: "
               "Cluster group not found")),
    ]
    for body, want in cases:
        assert error(h.request("PUT", url, body)) == want, body
        assert h.get(url).metadata == before, body     # nothing of a refused edit stays
    assert h.sql("SELECT * FROM nodes_failure_domains") == []
    assert error(h.request("PUT", url, [])) == (400, "json: cannot unmarshal array into Go value of type api.ClusterMemberPut")
    assert error(h.request("PUT", url, ok, headers={"If-Match": '"0000"'})) == (412, "ETag doesn't match")

    edit = {"roles": ["database", "event-hub", "database-standby"], "failure_domain": "rack1",
            "description": "d1", "config": {"scheduler.instance": "manual", "user.a": "1"},
            "groups": ["default", "default"]}
    assert h.request("PUT", url, edit, headers={"If-Match": etag}).status == 200
    m = h.get(url).metadata
    assert (m["roles"], m["failure_domain"], m["description"], m["config"], m["groups"]) == \
        (["event-hub", "database-leader", "database"], "rack1", "d1",
         {"scheduler.instance": "manual", "user.a": "1"}, ["default"])
    assert h.get(url).headers["ETag"] != etag
    # PATCH is LXD 5.0's PUT, except that config keys not sent are kept
    assert error(h.request("PATCH", url, {"description": "x"})) == \
        (400, 'The "database" role cannot be dropped at this time')
    assert h.request("PATCH", url, {"roles": ["database"], "failure_domain": "rack1", "groups": ["default"],
                                    "config": {"user.b": "2"}}).status == 200
    m = h.get(url).metadata
    assert m["config"] == {"scheduler.instance": "manual", "user.a": "1", "user.b": "2"}
    assert (m["roles"], m["description"]) == (["database-leader", "database"], "")
    assert h.request("PUT", url, {**ok, "failure_domain": "default"}).status == 200
    m = h.get(url).metadata
    assert (m["failure_domain"], m["config"]) == ("default", {})
    assert h.sql("SELECT failure_domain_id FROM nodes WHERE id = 1") == [{"failure_domain_id": None}]
    assert h.sql("SELECT role FROM nodes_roles") == []


def test_database_role_cannot_be_added_to_a_non_voter(h):
    bootstrap(h)
    b = add_member(h, "b", "10.1.0.2:8443")
    h.cluster.roles[b] = "stand-by"
    body = {"roles": ["database-standby", "database"], "failure_domain": "default", "groups": ["default"]}
    assert error(h.request("PUT", "/1.0/cluster/members/b", body)) == \
        (400, 'The "database" role cannot be added at this time')
    body["roles"] = ["database-standby", "ovn-chassis"]
    assert h.request("PUT", "/1.0/cluster/members/b", body).status == 200
    assert h.get("/1.0/cluster/members/b").metadata["roles"] == ["ovn-chassis", "database-standby"]


def test_rename_and_remove_go_to_the_cluster_layer(h):
    bootstrap(h)
    add_member(h, "b", "10.1.0.2:8443")
    add_member(h, "c", "10.1.0.3:8443")
    h.cluster.calls.clear()
    assert error(h.request("POST", "/1.0/cluster/members/b", {"server_name": "c"})) == \
        (409, 'The cluster already has a member with name "c"')
    assert error(h.request("POST", "/1.0/cluster/members/b", {"server_name": ""}))[0] == 400
    assert error(h.request("POST", "/1.0/cluster/members/b", {"server_name": "x/y"}))[0] == 400
    assert error(h.request("POST", "/1.0/cluster/members/zz", {"server_name": "q"})) == \
        (404, "Cluster member not found")
    assert [c for c in h.cluster.calls if c[0] == "rename"] == []
    assert h.request("POST", "/1.0/cluster/members/b", {"server_name": "b2"}).status == 200
    assert ("rename", "b", "b2") in h.cluster.calls
    assert h.get("/1.0/cluster/members/b2").status == 200

    assert error(h.request("DELETE", "/1.0/cluster/members/zz?force=1")) == (404, "Cluster member not found")
    assert h.request("DELETE", "/1.0/cluster/members/b2").status == 200
    assert h.request("DELETE", "/1.0/cluster/members/c?force=1").status == 200
    assert [c for c in h.cluster.calls if c[0] == "remove"] == [("remove", "b2", False), ("remove", "c", True)]
    assert h.get("/1.0/cluster/members").metadata == ["/1.0/cluster/members/a"]


# ---- join tokens --------------------------------------------------------------------------------

def test_join_tokens(h):
    bootstrap(h)
    add_member(h, "b", "10.1.0.2:8443")
    add_member(h, "c", "10.1.0.3:8443", heartbeat="2026-01-01T00:00:00Z")   # offline
    add_member(h, "e", "10.1.0.5:8443", state=qnodes.EVACUATED)
    r = h.request("POST", "/1.0/cluster/members", {"server_name": "new1"})
    assert r.status == 202
    op = r.json["metadata"]
    assert (op["class"], op["description"], op["resources"], op["may_cancel"], op["status"]) == \
        ("token", "Executing operation", {"cluster": None}, True, "Running")
    meta = op["metadata"]
    assert list(meta) == ["addresses", "expiresAt", "fingerprint", "secret", "serverName"]   # as LXD 5.0.2's
    with open(os.path.join(h.dir, "cluster.crt")) as f:
        assert meta["fingerprint"] == certs.fingerprint(f.read())
    assert meta["serverName"] == "new1" and re.fullmatch(r"[0-9a-f]{64}", meta["secret"])
    assert meta["addresses"] == ["10.1.0.1:8443", "10.1.0.2:8443"]          # the online members
    left = datetime.fromisoformat(meta["expiresAt"].replace("Z", "+00:00")) - datetime.now(timezone.utc)
    assert timedelta(hours=2, minutes=59) < left <= timedelta(hours=3)    # cluster.join_token_expiry 3H
    # what lxc prints is built from that metadata; it decodes as LXD's lxd init decodes it
    decoded = tokens.decode(tokens.token_string(meta))
    assert list(decoded) == ["server_name", "fingerprint", "addresses", "secret", "expires_at"]
    assert decoded["server_name"] == "new1" and decoded["secret"] == meta["secret"]

    # one token per name: a new one cancels the old
    r2 = h.request("POST", "/1.0/cluster/members", {"server_name": "new1"})
    assert h.get(r.json["operation"]).metadata["status"] == "Cancelled"
    meta2 = r2.json["metadata"]["metadata"]
    listed = h.call(tokens.list_tokens, h.state)
    assert [(t["server_name"], t["token"]) for t in listed] == [("new1", tokens.token_string(meta2))]
    running = h.get("/1.0/operations?recursion=1").metadata["running"]
    assert [o["metadata"]["serverName"] for o in running if o["class"] == "token"] == ["new1"]

    # single use, for that name only
    assert h.call(tokens.redeem, h.state, "new1", meta["secret"]) is False       # the cancelled one
    assert h.call(tokens.redeem, h.state, "other", meta2["secret"]) is False
    assert h.call(tokens.redeem, h.state, "new1", meta2["secret"]) is True
    assert h.call(tokens.redeem, h.state, "new1", meta2["secret"]) is False
    assert h.call(tokens.list_tokens, h.state) == []

    # revoked (lxc cluster revoke-token deletes the operation)
    r3 = h.request("POST", "/1.0/cluster/members", {"server_name": "new2"})
    assert h.request("DELETE", r3.json["operation"]).status == 200
    assert h.call(tokens.redeem, h.state, "new2", r3.json["metadata"]["metadata"]["secret"]) is False

    assert error(h.request("POST", "/1.0/cluster/members", {"server_name": "b"})) == \
        (400, "The cluster already has a member with name: b")
    assert error(h.request("POST", "/1.0/cluster/members", {}))[0] == 400


def test_join_token_expiry(h):
    bootstrap(h)
    h.set_config({"cluster.join_token_expiry": "1S"})
    r = h.request("POST", "/1.0/cluster/members", {"server_name": "late"})
    secret = r.json["metadata"]["metadata"]["secret"]
    time.sleep(1.2)
    with pytest.raises(tokens.TokenExpired, match="Token has expired"):
        h.call(tokens.redeem, h.state, "late", secret)
    assert h.get(r.json["operation"]).metadata["status"] == "Cancelled"    # used up all the same
    assert h.call(tokens.redeem, h.state, "late", secret) is False
    bad = h.request("PUT", "/1.0", {"config": {"cluster.join_token_expiry": "0"}})
    assert bad.status == 400 and "Invalid expiry expression" in bad.json["error"]


def test_no_online_member_no_token(h):
    bootstrap(h)
    h.sql("UPDATE nodes SET state = ? WHERE id = 1", [qnodes.EVACUATED])
    assert error(h.request("POST", "/1.0/cluster/members", {"server_name": "x"})) == \
        (500, "There are no online cluster members")


# ---- the cluster certificate --------------------------------------------------------------------

def _pair(name: str) -> tuple[str, str]:
    crt, key = certs.generate(name)
    return crt.decode(), key.decode()


def _served_fingerprint(port: int) -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.fixture
def listening(h):
    """h, clustered, with an HTTPS listener serving the cluster certificate on a loopback port."""
    bootstrap(h)
    crt, key = certificate.files(h.d.paths)
    port = free_port()
    h.d.https = HttpsListener(h.runner, crt, key)
    h.run(h.d.https.apply(f"127.0.0.1:{port}"))
    try:
        yield h, port
    finally:
        h.run(h.d.https.stop())


def test_certificate_rotation(listening):
    h, port = listening
    crt_path, key_path = certificate.files(h.d.paths)
    with open(crt_path) as f:
        old = f.read()
    assert _served_fingerprint(port) == certs.fingerprint(old)
    add_member(h, "b", "10.1.0.2:8443")
    new_crt, new_key = _pair("rotated")
    other_crt, other_key = _pair("other")
    refused = [
        ({"cluster_certificate": new_crt}, "Private key must be base64 encoded PEM key"),
        ({"cluster_certificate_key": new_key}, "Certificate must be base64 encoded PEM certificate"),
        ({"cluster_certificate": new_crt, "cluster_certificate_key": other_key},
         "failed to load cluster TLS certificate: tls: private key does not match public key"),
        ({"cluster_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
          "cluster_certificate_key": new_key}, "failed to load cluster TLS certificate: x509: malformed certificate"),
    ]
    h.cluster.calls.clear()
    for body, text in refused:
        assert error(h.request("PUT", "/1.0/cluster/certificate", body)) == (400, text)
    with open(crt_path) as f:
        assert f.read() == old                          # nothing written, nothing sent on
    assert [c for c in h.cluster.calls if c[0] == "notify_all"] == []

    body = {"cluster_certificate": new_crt, "cluster_certificate_key": new_key}
    assert h.request("PUT", "/1.0/cluster/certificate", body).status == 200
    assert h.cluster.calls[-1] == ("notify_all", "PUT", "/1.0/cluster/certificate", body)
    with open(crt_path) as f, open(key_path) as g:
        assert (f.read(), g.read()) == (new_crt, new_key)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert _served_fingerprint(port) == certs.fingerprint(new_crt)   # the listener serves the new one

    # a member receiving the notification installs it, and sends nothing on
    h.cluster.calls.clear()
    r = h.request("PUT", "/1.0/cluster/certificate",
                  {"cluster_certificate": other_crt, "cluster_certificate_key": other_key},
                  headers={"User-Agent": NOTIFIER})
    assert r.status == 200 and h.cluster.calls == []
    assert _served_fingerprint(port) == certs.fingerprint(other_crt)

    # a member that could not take it is named; this member has it all the same
    h.cluster.notify_errors["b"] = "connection refused"
    r = h.request("PUT", "/1.0/cluster/certificate", body)
    assert error(r) == (500, "The cluster certificate was updated here but not on: b: connection refused")
    assert _served_fingerprint(port) == certs.fingerprint(new_crt)


def test_certificate_on_a_standalone_server(h):
    crt, key = _pair("x")
    assert error(h.request("PUT", "/1.0/cluster/certificate",
                           {"cluster_certificate": crt, "cluster_certificate_key": key})) == \
        (400, "This server is not clustered")
    assert not os.path.exists(os.path.join(h.dir, "cluster.crt"))
    assert error(h.request("PUT", "/1.0/cluster/certificate", {}))[1] == \
        "Certificate must be base64 encoded PEM certificate"
