"""What a cluster refuses at join time (issue 12): a joining server that is not empty, one with
another schema or API version. Real corralds on loopback (distinct ports); the cluster is unchanged."""
import json
import os
import re
import ssl
import urllib.request

import pytest

from helpers import Corrald, free_port, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster_of_one():
    a = Corrald()
    try:
        a.start()
        a.address = f"127.0.0.1:{free_port()}"
        a.lxc("config", "set", "core.https_address", a.address)
        a.lxc("cluster", "enable", unique("m"))
        a.lxc("config", "set", "core.trust_password", "join-sekrit")
        yield a
    finally:
        a.cleanup()


def _members(m):
    return [x["server_name"] for x in m.get("/1.0/cluster/members?recursion=1").metadata]


def _accept(a, body) -> tuple[int, dict]:
    """POST /internal/cluster/accept as a joining server does (over HTTPS, the cluster cert pinned)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(os.path.join(a.dir, "cluster.crt"))
    req = urllib.request.Request(f"https://{a.address}/internal/cluster/accept", method="POST",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_server_with_custom_volumes_is_refused_and_the_cluster_is_unchanged(cluster_of_one):
    a = cluster_of_one
    before = _members(a)
    b = Corrald()
    try:
        b.start()
        addr = f"127.0.0.1:{free_port()}"
        b.lxc("config", "set", "core.https_address", addr)
        b.lxc("storage", "create", "p1", "dir")
        b.lxc("storage", "volume", "create", "p1", "keepme")
        with open(os.path.join(a.dir, "cluster.crt")) as f:
            cert = f.read()
        r = b.request("PUT", "/1.0/cluster", {"server_name": unique("j"), "enabled": True,
                                              "cluster_address": a.address, "cluster_certificate": cert,
                                              "server_address": addr, "cluster_password": "join-sekrit"})
        op = b.wait_op(r)
        assert op["status"] == "Failure", op
        assert "must be empty" in op["err"] and "1 custom volumes" in op["err"], op["err"]
        assert b.get("/1.0/storage-pools/p1/volumes/custom/keepme").status == 200   # nothing of b lost
        assert b.get("/1.0/cluster").metadata["enabled"] is False
    finally:
        b.cleanup()
    assert _members(a) == before


def test_another_schema_or_api_version_is_refused(cluster_of_one):
    a = cluster_of_one
    before = _members(a)
    env = a.get("/1.0").metadata
    good = {"name": unique("v"), "address": f"127.0.0.1:{free_port()}", "architecture": os.uname().machine,
            "secret": "join-sekrit", "api_extensions": len(env["api_extensions"])}
    out = a.run("corrald", "sql", "global", "SELECT schema FROM nodes", check=True).stdout
    schema = int(re.search(r"\|\s*(\d+)\s*\|", out).group(1))   # what this member recorded
    for change in ({"schema": 999, "api_extensions": good["api_extensions"]},
                   {"schema": schema, "api_extensions": good["api_extensions"] + 1}):
        status, doc = _accept(a, dict(good, **change))
        assert status == 400 and "version doesn't match" in doc["error"], (status, doc)
    status, doc = _accept(a, dict(good, schema=schema, secret="wrong"))
    assert status == 403, (status, doc)
    assert _members(a) == before
