"""ISSUE12 acceptance 1 and 8: forming a cluster the ways LXD 5.0 offers (preseed bootstrap, preseed join
with cluster_certificate_path + cluster_password, preseed join with a token from `lxc cluster add`,
PUT /1.0/cluster at run time, `lxc cluster enable` on a running standalone server), and the joins
LXD refuses (wrong cluster certificate, used / expired / revoked / tampered token, bad preseed),
each leaving the cluster unchanged.

The texts checked are LXD 5.0.2's (seen against the real LXD with CORRAL_CLUSTER_DAEMON=lxd)."""
import base64
import json
import os
import re
import time

import pylxd
import pytest

from clusterlib import (bootstrap, by_name, join_preseed, members_api, members_csv,
                        members_lxc, parse_sql_table, profile_names, raft_nodes, role_counts, temp_file,
                        token_for, wait_all_online, wait_roles, wrong_certificate)

PASSWORD = "corral-cluster-secret"


def cluster_crt(m) -> str:
    with open(os.path.join(m.dir, "cluster.crt")) as f:
        return f.read()


def cluster_enabled(m) -> dict:
    r = m.request("GET", "/1.0/cluster")
    assert r.status == 200, r.body
    return r.metadata


def put_join(m, via, password: str, cert: str | None = None) -> dict:
    """Join `m` at run time: PUT /1.0/cluster on m (LXD 5.0's ClusterPut; a join token goes in
    cluster_password, as LXD 5.0's `lxd init` sends it), then wait for the operation."""
    r = m.request("PUT", "/1.0/cluster", {
        "server_name": m.name, "enabled": True, "member_config": [],
        "server_address": m.address, "cluster_address": via.address,
        "cluster_certificate": cert if cert is not None else cluster_crt(via),
        "cluster_password": password})
    assert r.status == 202, (r.status, r.body)
    assert r.json["type"] == "async"
    return m.wait_op(r, timeout=120)


@pytest.mark.timeout(240)
def test_four_members_by_preseed_token_and_put_then_all_online_3_voters_1_standby(cluster_factory):
    c = cluster_factory(4, https=False)
    m1, m2, m3, m4 = c.members

    # bootstrap: preseed with core.https_address and cluster {server_name, enabled}
    m1.preseed({"config": {"core.https_address": m1.address, "core.trust_password": PASSWORD},
                "cluster": {"server_name": "m1", "enabled": True}})
    assert cluster_enabled(m1)["server_name"] == "m1" and cluster_enabled(m1)["enabled"] is True
    assert os.path.isfile(os.path.join(m1.dir, "cluster.crt")) and os.path.isfile(os.path.join(m1.dir, "cluster.key"))

    # join 1: preseed with cluster_address + cluster_certificate_path + cluster_password (trust password)
    path = temp_file(cluster_crt(m1), suffix=".crt")
    try:
        m2.preseed(join_preseed(m2, m1, password=PASSWORD, cert_path=path))
    finally:
        os.unlink(path)

    # join 2: a token from `lxc cluster add` (its own output: "Member m3 join token:" then the token)
    out = m1.lxc("cluster", "add", "m3").stdout.strip().splitlines()
    assert out[0] == "Member m3 join token:", out
    token = out[-1]
    decoded = json.loads(base64.b64decode(token))
    assert decoded["server_name"] == "m3" and m1.address in decoded["addresses"]
    assert set(decoded) >= {"server_name", "fingerprint", "addresses", "secret", "expires_at"}
    listed = m1.lxc("cluster", "list-tokens", "--format", "csv").stdout
    assert f"m3,{token}," in listed, listed
    m3.preseed(join_preseed(m3, m1, token=token))
    assert "m3," not in m1.lxc("cluster", "list-tokens", "--format", "csv").stdout   # single use

    # join 3: at run time, PUT /1.0/cluster with a token made through the REST API on a joined member
    r = m2.request("POST", "/1.0/cluster/members", {"server_name": "m4"})
    assert r.status == 202 and r.json["metadata"]["class"] == "token", r.body
    op_meta = r.json["metadata"]["metadata"]
    assert op_meta["serverName"] == "m4" and op_meta["secret"] and op_meta["fingerprint"]
    token4 = base64.b64encode(json.dumps({
        "server_name": "m4", "fingerprint": op_meta["fingerprint"], "addresses": op_meta["addresses"],
        "secret": op_meta["secret"], "expires_at": op_meta["expiresAt"]}).encode()).decode()
    m4.set_https_address()
    op = put_join(m4, m2, token4)
    assert op["status"] == "Success", op

    ms = [m1, m2, m3, m4]
    wait_all_online(ms, 4, timeout=30)
    for m in ms:
        wait_roles(m, 4, voters=3, standby=1, timeout=20)
        listed = members_lxc(m)   # the real lxc client's view
        assert sorted(x["server_name"] for x in listed) == ["m1", "m2", "m3", "m4"]
        assert all(x["status"] == "Online" and x["message"] == "Fully operational" for x in listed), listed
        assert role_counts(listed) == {"voters": 3, "standby": 1, "leaders": 1}, listed
        for x in listed:
            assert x["url"] == f"https://{c.member(x['server_name']).address}"
            assert x["database"] is True   # voters and stand-bys serve the database
            assert x["architecture"] and "default" in x["groups"]
        rows = members_csv(m)
        assert [r["state"] for r in rows] == ["ONLINE"] * 4, rows
        # one cluster certificate, in every member's dir
        assert cluster_crt(m) == cluster_crt(m1)
        assert cluster_enabled(m)["server_name"] == m.name

    shown = m1.lxc("cluster", "show", "m4").stdout
    assert "server_name: m4" in shown and "status: Online" in shown, shown

    # pylxd's cluster API
    client = pylxd.Client(endpoint=m3.socket)
    assert client.cluster.get().enabled is True
    members = client.cluster.members.all()
    assert sorted(x.server_name for x in members) == ["m1", "m2", "m3", "m4"]
    assert all(x.status == "Online" for x in members)
    assert client.cluster.members.get("m2").url == f"https://{m2.address}"


@pytest.mark.timeout(180)
def test_enable_keeps_the_standalone_data_and_a_member_joins_at_run_time(cluster_factory):
    c = cluster_factory(2)
    m1, m2 = c.members
    # a standalone server with data of its own
    m1.lxc("profile", "create", "keepme")
    m1.lxc("profile", "set", "keepme", "user.kept", "yes")
    m1.lxc("config", "set", "images.auto_update_interval", "7")
    before = cluster_enabled(m1)
    assert before["enabled"] is False and before["server_name"] == "", before

    res = m1.lxc("cluster", "enable", "m1")
    assert "Clustering enabled" in res.stdout, res.stdout
    assert cluster_enabled(m1)["enabled"] is True and cluster_enabled(m1)["server_name"] == "m1"
    # the standalone's data is kept
    assert m1.lxc("profile", "get", "keepme", "user.kept").stdout.strip() == "yes"
    assert m1.lxc("config", "get", "images.auto_update_interval").stdout.strip() == "7"
    listed = members_lxc(m1)
    assert [x["server_name"] for x in listed] == ["m1"] and "database-leader" in listed[0]["roles"]
    # the member row was renamed from "none" and got the address; raft_nodes knows it
    rows = parse_sql_table(m1.sql("global", "SELECT id, name, address FROM nodes").stdout)
    assert rows == [["1", "m1", m1.address]], rows
    assert [(r["id"], r["address"], r["role"]) for r in raft_nodes(m1)] == [(1, m1.address, 0)]
    # enabling twice is refused by the client, as with LXD
    again = m1.lxc("cluster", "enable", "m1", check=False)
    assert again.returncode != 0 and "already clustered" in again.stderr, again.stderr

    # a second member joins at run time (PUT /1.0/cluster with a token in cluster_password)
    op = put_join(m2, m1, token_for(m1, "m2"))
    assert op["status"] == "Success", op
    wait_all_online([m1, m2], 2, timeout=30)
    assert m2.lxc("profile", "get", "keepme", "user.kept").stdout.strip() == "yes"
    m2.lxc("profile", "create", "frommember2")
    assert "frommember2" in profile_names(m1)
    # the cluster-wide config is in the database m2 shares (LXD 5.0.2's joiner keeps a stale in-memory
    # copy until the next config change, so `lxc config get` on m2 is not asserted)
    rows = parse_sql_table(m2.sql("global", "SELECT value FROM config WHERE key='images.auto_update_interval'").stdout)
    assert rows == [["7"]], rows


def cluster_state(m) -> tuple:
    """What a refused join must not change: the members and their roles, and the pending tokens."""
    members = tuple(sorted((x["server_name"], x["url"], tuple(x.get("roles") or [])) for x in members_api(m)))
    tokens = m.lxc("cluster", "list-tokens", "--format", "csv").stdout
    return members, tuple(sorted(line.split(",")[0] for line in tokens.splitlines() if line))


def refused(m, doc, pattern: str, state_before, via, gone: tuple = ()) -> str:
    """The join is refused with an error matching `pattern`; the cluster's members and roles and its
    pending tokens are as before (but for the tokens in `gone`: an expired one may be dropped)."""
    res = m.preseed(doc, check=False)
    assert res.returncode != 0, f"join accepted: {res.stdout}"
    assert re.search(pattern, res.stderr), res.stderr
    members, tokens = cluster_state(via)
    assert (members, tuple(t for t in tokens if t not in gone)) == \
        (state_before[0], tuple(t for t in state_before[1] if t not in gone))
    assert cluster_enabled(m)["enabled"] is False   # the candidate stays standalone
    return res.stderr


@pytest.mark.timeout(240)
def test_bad_joins_are_refused_with_a_clear_error_and_change_nothing(cluster_factory):
    c = cluster_factory(3, https=False)
    m1, m2, m3 = c.members
    bootstrap(m1)
    used = token_for(m1, "m2")
    m2.preseed(join_preseed(m2, m1, token=used))
    wait_all_online([m1, m2], 2)
    m3.set_https_address()   # a candidate reachable on the network, as for any join

    # a token for m3 pending, so that "unchanged" covers the token list too
    token = token_for(m1, "m3")
    state = cluster_state(m1)
    assert state[1] == ("m3",)

    # wrong cluster certificate (the token's secret is right)
    base = {"enabled": True, "server_name": "m3", "server_address": m3.address, "cluster_address": m1.address,
            "cluster_password": token}
    refused(m3, {"cluster": {**base, "cluster_certificate": wrong_certificate(m1.ip)}},
            r"(?i)certificate", state, m1)
    # a token whose fingerprint is not the cluster's
    j = json.loads(base64.b64decode(token))
    tampered = base64.b64encode(json.dumps({**j, "fingerprint": "ab" * 32}).encode()).decode()
    refused(m3, join_preseed(m3, m1, token=tampered), r"(?i)fingerprint", state, m1)
    # a token already used (m2's), and a revoked one
    refused(m3, join_preseed(m3, m1, token=used), r"(?i)(token|join operation)", state, m1)
    revoked = token_for(m1, "m9")
    res = m1.lxc("cluster", "revoke-token", "m9")
    assert "Cluster join token for local:m9 deleted" in res.stdout, res.stdout
    assert cluster_state(m1) == state
    refused(m3, join_preseed(m3, m1, token=revoked), r"(?i)(token|join operation)", state, m1)
    # an expired token
    m1.lxc("config", "set", "cluster.join_token_expiry", "2S")
    expired = token_for(m1, "m8")
    time.sleep(3)
    refused(m3, join_preseed(m3, m1, token=expired), r"(?i)expired", cluster_state(m1), m1, gone=("m8",))
    m1.lxc("config", "unset", "cluster.join_token_expiry")
    state = cluster_state(m1)
    # a bad preseed: an unknown key in the cluster section, or no server address
    refused(m3, {"cluster": {**base, "cluster_certificate": cluster_crt(m1), "bogus_key": "x"}},
            r"bogus_key", state, m1)
    no_address = {k: v for k, v in base.items() if k != "server_address"}
    refused(m3, {"cluster": {**no_address, "cluster_certificate": cluster_crt(m1)}},
            r"(?i)server address", state, m1)

    # after all that, m3 still joins with its (unused) token, and the cluster is whole
    m3.preseed(join_preseed(m3, m1, token=token))
    wait_all_online([m1, m2, m3], 3, timeout=30)
    assert sorted(by_name(members_api(m2))) == ["m1", "m2", "m3"]
