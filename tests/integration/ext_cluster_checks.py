"""The clustering API extensions' checks (imported by test_extensions.py): a two-member cluster of real
corralds on loopback (distinct ports), bootstrapped with `lxc cluster enable` and joined at run time."""
from __future__ import annotations

import base64
import json
import os
import time

from corral.pki import certs
from helpers import Corrald, free_port, unique, wait_for

_PAIR: list[Corrald] = []


def pair() -> tuple[Corrald, Corrald]:
    """The cluster (made on first use): a bootstrapped with `lxc cluster enable`, b joined with the
    trust password through PUT /1.0/cluster."""
    if _PAIR:
        return _PAIR[0], _PAIR[1]
    a, b = Corrald(), Corrald()
    _PAIR.extend([a, b])
    a.start()
    b.start()
    for m in (a, b):
        m.address = f"127.0.0.1:{free_port()}"
        m.lxc("config", "set", "core.https_address", m.address)
    a.name, b.name = unique("ca"), unique("cb")
    r = a.lxc("cluster", "enable", a.name)
    assert "Clustering enabled" in r.stdout, r.stdout
    a.lxc("config", "set", "core.trust_password", "ext-sekrit")
    with open(os.path.join(a.dir, "cluster.crt")) as f:
        cert = f.read()
    r = b.request("PUT", "/1.0/cluster", {"server_name": b.name, "enabled": True, "cluster_address": a.address,
                                          "cluster_certificate": cert, "server_address": b.address,
                                          "cluster_password": "ext-sekrit"})
    assert r.status == 202, r.body
    assert b.wait_op(r)["status"] == "Success"
    return a, b


def close_pair() -> None:
    while _PAIR:
        _PAIR.pop().cleanup()


def _members(m: Corrald) -> dict[str, dict]:
    return {x["server_name"]: x for x in m.get("/1.0/cluster/members?recursion=1").metadata}


def _edit(m: Corrald, name: str, **changes):
    """What `lxc cluster edit` does: the member as shown, changed, PUT back (a PUT replaces it)."""
    cur = m.get(f"/1.0/cluster/members/{name}").metadata
    body = {k: cur[k] for k in ("description", "config", "groups", "roles", "failure_domain")}
    body.update(changes)
    return m.request("PUT", f"/1.0/cluster/members/{name}", body)


def check_clustering(d, c):
    # A standalone server answers as LXD's: not clustered, the member config a joiner would give.
    cluster = d.get("/1.0/cluster").metadata
    assert cluster["enabled"] is False and cluster["server_name"] == ""
    assert {"entity": "storage-pool", "name": "default", "key": "source", "value": "",
            "description": '"source" property for storage pool "default"'} in cluster["member_config"]
    r = d.lxc("cluster", "list", check=False)
    assert r.returncode == 1 and "isn't part of a cluster" in r.stderr, r.stderr
    assert d.get("/1.0").metadata["environment"]["server_clustered"] is False
    # A clustered one: enabled, named, listed by the lxc client
    a, b = pair()
    assert a.get("/1.0/cluster").metadata == {"server_name": a.name, "enabled": True, "member_config": []}
    env = b.get("/1.0").metadata["environment"]
    assert env["server_clustered"] is True and env["server_name"] == b.name
    out = a.lxc("cluster", "list", "--format", "csv").stdout
    assert a.name in out and b.name in out, out


def check_clustering_join(d, c):
    a, b = pair()
    for m in (a, b):   # a write on either member is read on the other
        assert set(_members(m)) == {a.name, b.name}
    p = unique("pj")
    b.lxc("profile", "create", p)
    assert a.get(f"/1.0/profiles/{p}").status == 200
    a.lxc("profile", "delete", p)
    assert b.get(f"/1.0/profiles/{p}").status == 404


def check_clustering_server_address(d, c):
    a, b = pair()
    assert _members(a)[b.name]["url"] == f"https://{b.address}"


def check_clustering_roles(d, c):
    a, b = pair()
    roles = {n: m["roles"] for n, m in _members(b).items()}
    # two members: one voter (the leader), one stand-by, as LXD sizes a 2-member cluster
    assert roles[a.name] == ["database-leader", "database"], roles
    assert roles[b.name] == ["database-standby"], roles


def check_clustering_architecture(d, c):
    a, b = pair()
    assert {m["architecture"] for m in _members(a).values()} == {os.uname().machine}


def check_clustering_sizing(d, c):
    a, b = pair()
    for key, bad in (("cluster.max_voters", "4"), ("cluster.max_voters", "1"), ("cluster.max_standby", "6")):
        r = a.request("PATCH", "/1.0", {"config": {key: bad}})
        assert r.status == 400 and key in r.json["error"], r.body
    a.lxc("config", "set", "cluster.max_standby", "1")
    assert b.get("/1.0").metadata["config"]["cluster.max_standby"] == "1"
    a.lxc("config", "unset", "cluster.max_standby")


def check_clustering_edit_roles(d, c):
    a, b = pair()
    a.lxc("cluster", "role", "add", b.name, "event-hub")
    assert "event-hub" in _members(b)[b.name]["roles"]
    r = a.lxc("cluster", "role", "add", b.name, "database", check=False)
    assert r.returncode == 1, r.stdout
    a.lxc("cluster", "role", "remove", b.name, "event-hub")
    assert "event-hub" not in _members(a)[b.name]["roles"]


def check_clustering_failure_domains(d, c):
    a, b = pair()
    r = _edit(a, b.name, failure_domain="rack-2")
    assert r.status == 200, r.body
    assert _members(b)[b.name]["failure_domain"] == "rack-2"
    assert _edit(a, b.name, failure_domain="default").status == 200


def check_clustering_join_token(d, c):
    a, b = pair()
    name = unique("tk")
    token = a.lxc("cluster", "add", name, "--quiet").stdout.strip()
    doc = json.loads(base64.b64decode(token))
    assert doc["server_name"] == name and doc["fingerprint"] == certs.fingerprint(
        open(os.path.join(a.dir, "cluster.crt")).read())
    assert a.address in doc["addresses"]
    assert name in a.lxc("cluster", "list-tokens", "--format", "csv").stdout
    a.lxc("cluster", "revoke-token", name)
    assert name not in a.lxc("cluster", "list-tokens", "--format", "csv").stdout


def check_clustering_description(d, c):
    a, b = pair()
    assert _edit(a, a.name, description="first one").status == 200
    assert _members(b)[a.name]["description"] == "first one"


def check_clustering_config(d, c):
    a, b = pair()
    r = _edit(b, b.name, config={"user.rack": "r7"})
    assert r.status == 200, r.body
    assert _members(a)[b.name]["config"] == {"user.rack": "r7"}


def check_clustering_update_cert(d, c):
    a, b = pair()
    crt, key = certs.generate(unique("cl"))
    r = a.request("PUT", "/1.0/cluster/certificate", {"cluster_certificate": crt.decode(),
                                                      "cluster_certificate_key": key.decode()})
    assert r.status == 200, r.body
    for m in (a, b):   # every member serves, shows and uses the new one
        assert m.get("/1.0").metadata["environment"]["certificate_fingerprint"] == certs.fingerprint(crt)
        with open(os.path.join(m.dir, "cluster.crt"), "rb") as f:
            assert f.read() == crt
    p = unique("pc")   # and the members still reach each other with it
    a.lxc("profile", "create", p)
    assert wait_for(lambda: b.get(f"/1.0/profiles/{p}").status == 200, timeout=10)
    b.lxc("profile", "delete", p)


def check_cluster_join_token_expiry(d, c):
    a, b = pair()
    a.lxc("config", "set", "cluster.join_token_expiry", "2S")
    try:
        name = unique("tx")
        token = a.lxc("cluster", "add", name, "--quiet").stdout.strip()
        doc = json.loads(base64.b64decode(token))
        assert doc["expires_at"] and doc["expires_at"] != "0001-01-01T00:00:00Z", doc
        time.sleep(2.5)
        joiner = Corrald()
        try:
            joiner.start()
            addr = f"127.0.0.1:{free_port()}"
            joiner.lxc("config", "set", "core.https_address", addr)
            r = joiner.request("PUT", "/1.0/cluster", {
                "server_name": name, "enabled": True, "cluster_address": a.address, "server_address": addr,
                "cluster_certificate": open(os.path.join(a.dir, "cluster.crt")).read(),
                "cluster_password": token})
            op = joiner.wait_op(r)
            assert op["status"] == "Failure" and "expired" in op["err"], op
        finally:
            joiner.cleanup()
        assert name not in _members(a)
    finally:
        a.lxc("config", "unset", "cluster.join_token_expiry")


# ---- instances across the pair's members (issue 13: moves, copies, evacuation) --------------------------

_POOL: list[str] = []


def _pair_pool(a: Corrald, b: Corrald) -> str:
    """A dir pool on both members, made LXD's way: defined on each member, then created."""
    if not _POOL:
        name = unique("xp")
        for m in (a, b):
            a.lxc("storage", "create", name, "dir", "--target", m.name)
        a.lxc("storage", "create", name, "dir")
        _POOL.append(name)
    return _POOL[0]


def _node_of(m: Corrald, name: str) -> str:
    out = m.run("corrald", "sql", "global", "SELECT n.name FROM instances i JOIN nodes n ON n.id = i.node_id "
                                            f"WHERE i.name = '{name}'", check=True).stdout
    rows = [line.strip().strip("|").strip() for line in out.splitlines() if line.startswith("|")]
    return rows[1] if len(rows) > 1 else ""


def _empty_with_file(m: Corrald, name: str, pool: str) -> None:
    m.lxc("init", "--empty", name, "-s", pool)
    path = os.path.join(m.dir, f"{name}.hello")
    with open(path, "w") as f:
        f.write(f"I am {name}\n")
    try:
        m.lxc("file", "push", path, f"{name}/hello")
    finally:
        os.unlink(path)


def check_cluster_internal_copy(d, c):
    """POST /1.0/instances {"source": {"type": "copy"}} of another member's instance: the member
    making the copy pulls the volume from the one holding it."""
    a, b = pair()
    pool = _pair_pool(a, b)
    src, dst = unique("xs"), unique("xd")
    _empty_with_file(a, src, pool)
    try:
        b.lxc("copy", src, dst, "--target", b.name)
        assert (_node_of(a, src), _node_of(a, dst)) == (a.name, b.name)
        assert b.lxc("file", "pull", f"{dst}/hello", "-").stdout == f"I am {src}\n"
    finally:
        b.lxc("delete", dst, check=False)
        a.lxc("delete", src, check=False)


def check_clustering_evacuation(d, c):
    a, b = pair()
    pool = _pair_pool(a, b)
    name = unique("xe")
    _empty_with_file(a, name, pool)
    try:
        b.lxc("cluster", "evacuate", a.name, "--force")
        assert _members(b)[a.name]["status"] == "Evacuated"
        assert _node_of(a, name) == b.name
        assert b.lxc("file", "pull", f"{name}/hello", "-").stdout == f"I am {name}\n"
        a.lxc("cluster", "restore", a.name, "--force")
        assert _members(b)[a.name]["status"] == "Online"
        assert _node_of(a, name) == a.name
        assert a.lxc("file", "pull", f"{name}/hello", "-").stdout == f"I am {name}\n"
    finally:
        for m in (a, b):
            m.lxc("delete", name, check=False)
def check_clustering_image_replication(d, c):
    # An import reaches cluster.images_minimal_replica members (default 3: both here); a member
    # without the files fetches them on demand; a delete removes every copy.
    from corral.cli.busybox import build_busybox_image
    import hashlib
    import shutil
    import tempfile
    a, b = pair()
    tmp = tempfile.mkdtemp(prefix="corral-ext-img-", dir="/var/tmp")
    try:
        path = build_busybox_image(tmp, description=unique("rep"))
        fp = hashlib.sha256(open(path, "rb").read()).hexdigest()
        a.lxc("image", "import", path)
        files = lambda: {m.name for m in (a, b) if os.path.isfile(os.path.join(m.dir, "images", fp))}  # noqa: E731
        assert files() == {a.name, b.name}
        b.lxc("image", "delete", fp)
        assert files() == set() and a.get(f"/1.0/images/{fp}").status == 404
        a.lxc("config", "set", "cluster.images_minimal_replica", "1")
        a.lxc("image", "import", path)
        assert files() == {a.name}
        r = b.get(f"/1.0/images/{fp}/export")   # answered by a, the holder
        assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == fp and files() == {a.name}
        a.lxc("image", "delete", fp)
        assert files() == set()
    finally:
        a.lxc("config", "unset", "cluster.images_minimal_replica", check=False)
        shutil.rmtree(tmp, ignore_errors=True)
