"""The REST core against a real corrald (real dqlite): envelopes, config, ETags, errors."""

from helpers import sample, unique


def keys_tree(obj):
    if isinstance(obj, dict):
        return {k: keys_tree(v) for k, v in obj.items()}
    return type(obj).__name__


def test_root_and_server_shape(daemon):
    r = daemon.get("/")
    assert r.status == 200 and r.json == sample("1.0-untrusted-root.json")
    r = daemon.get("/1.0")
    assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    assert r.headers["ETag"].startswith('"')
    want, got = sample("1.0.json"), r.json
    assert set(got) == set(want)
    assert {k for k in got if k != "metadata"} and all(got[k] == want[k] for k in got if k != "metadata")
    assert set(got["metadata"]) == set(want["metadata"])
    env_want, env_got = want["metadata"]["environment"], got["metadata"]["environment"]
    # Corral's additions: how VMs run here (KVM or TCG, and why), beside LXD's "lxc | qemu" driver fields.
    assert set(env_got) - {"vm_accelerator", "vm_accelerator_reason"} == set(env_want)
    for k, v in env_want.items():
        assert type(env_got[k]) is type(v), k
    assert env_got["server_pid"] != 0 and env_got["certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_config_put_patch_and_unknown_key(daemon):
    r = daemon.request("PATCH", "/1.0", {"config": {"core.shutdown_timeout": "3"}})
    assert r.status == 200, r.body
    assert daemon.get("/1.0").metadata["config"]["core.shutdown_timeout"] == "3"
    before = daemon.get("/1.0").metadata["config"]
    r = daemon.request("PATCH", "/1.0", {"config": {"core.shutdown_timeout": "4", "nope.key": "1"}})
    assert r.status == 400 and r.json["type"] == "error" and "nope.key" in r.json["error"]
    assert daemon.get("/1.0").metadata["config"] == before        # nothing changed
    r = daemon.request("PATCH", "/1.0", {"config": {"core.shutdown_timeout": "soon"}})
    assert r.status == 400 and "core.shutdown_timeout" in r.json["error"]
    # PUT replaces: keys left out are unset
    r = daemon.request("PUT", "/1.0", {"config": {"images.auto_update_interval": "12"}})
    assert r.status == 200
    assert daemon.get("/1.0").metadata["config"] == {"images.auto_update_interval": "12"}
    daemon.request("PUT", "/1.0", {"config": {}})


def test_member_local_key_goes_to_local_db(daemon):
    daemon.request("PATCH", "/1.0", {"config": {"cluster.https_address": "127.0.0.1:9443"}})
    out = daemon.run("corrald", "sql", "local", "SELECT key, value FROM config", check=True).stdout
    assert "cluster.https_address" in out and "127.0.0.1:9443" in out
    out = daemon.run("corrald", "sql", "global", "SELECT key FROM config", check=True).stdout
    assert "cluster.https_address" not in out
    daemon.request("PATCH", "/1.0", {"config": {"cluster.https_address": ""}})


def test_etag_if_match(daemon):
    name = unique("etag")
    assert daemon.request("POST", "/1.0/profiles", {"name": name}).status == 201
    r = daemon.get(f"/1.0/profiles/{name}")
    etag = r.headers["ETag"]
    ok = daemon.request("PUT", f"/1.0/profiles/{name}", {"config": {"user.a": "1"}}, headers={"If-Match": etag})
    assert ok.status == 200
    stale = daemon.request("PUT", f"/1.0/profiles/{name}", {"config": {"user.a": "2"}}, headers={"If-Match": etag})
    assert stale.status == 412 and stale.json["error_code"] == 412
    assert daemon.get(f"/1.0/profiles/{name}").metadata["config"] == {"user.a": "1"}
    stale = daemon.request("PATCH", "/1.0", {"config": {"core.shutdown_timeout": "9"}},
                           headers={"If-Match": '"0000"'})
    assert stale.status == 412
    daemon.request("DELETE", f"/1.0/profiles/{name}")


def test_error_envelopes(daemon):
    r = daemon.request("POST", "/1.0/profiles", raw=b'{bad json')
    assert r.status == 400 and r.headers["Content-Type"] == "application/json"
    assert r.json["type"] == "error" and r.json["metadata"] is None and "JSON" in r.json["error"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    r = daemon.get("/1.0/nothing-here")
    assert r.status == 404 and r.json == sample("error-missing-endpoint.json")
    r = daemon.request("DELETE", "/1.0")
    assert r.status == 501 and "not implemented" in r.json["error"]
    r = daemon.request("POST", "/1.0/profiles", raw=b"[1, 2]")
    assert r.status == 400
    r = daemon.request("POST", "/1.0/profiles", raw=b"\xff\xfe{}")
    assert r.status == 400 and "UTF-8" in r.json["error"]
    r = daemon.request("POST", "/1.0/profiles", raw=b"[" * 5000 + b"]" * 5000)
    assert r.status == 400 and "nested" in r.json["error"]
    r = daemon.get("/1.0/profiles?project=nope")
    assert r.status == 404 and r.json["error"] == "Project not found"


def test_profiles_crud_and_validation(daemon):
    name, new = unique("prof"), unique("ren")
    names_before = daemon.get("/1.0/profiles").metadata
    for bad in ["", "a/b", ".", "..", "has space", "x" * 300]:
        r = daemon.request("POST", "/1.0/profiles", {"name": bad})
        assert r.status == 400, bad
    r = daemon.request("POST", "/1.0/profiles", {"name": name, "config": {"bogus.key": "1"}})
    assert r.status == 400 and "bogus.key" in r.json["error"]
    r = daemon.request("POST", "/1.0/profiles", {"name": name, "devices": {"d": {"type": "warp-drive"}}})
    assert r.status == 400
    assert daemon.get("/1.0/profiles").metadata == names_before          # nothing created

    r = daemon.request("POST", "/1.0/profiles", {"name": name, "description": "d",
                                                 "config": {"limits.memory": "256MiB"},
                                                 "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}})
    assert r.status == 201 and r.headers["Location"] == f"/1.0/profiles/{name}"
    assert daemon.request("POST", "/1.0/profiles", {"name": name}).status == 409
    p = daemon.get(f"/1.0/profiles/{name}").metadata
    assert set(p) == set(sample("profiles-default.json")["metadata"])
    assert p["config"] == {"limits.memory": "256MiB"} and p["description"] == "d"
    r = daemon.request("PATCH", f"/1.0/profiles/{name}", {"config": {"user.x": "y"}})
    assert r.status == 200
    p = daemon.get(f"/1.0/profiles/{name}").metadata
    assert p["config"] == {"limits.memory": "256MiB", "user.x": "y"} and "root" in p["devices"]
    r = daemon.request("PUT", f"/1.0/profiles/{name}", {"config": {"limits.memory": "nonsense"}})
    assert r.status == 400
    r = daemon.request("POST", f"/1.0/profiles/{name}", {"name": new})
    assert r.status == 201
    assert daemon.get(f"/1.0/profiles/{name}").status == 404
    assert f"/1.0/profiles/{new}" in daemon.get("/1.0/profiles").metadata
    rec = daemon.get("/1.0/profiles?recursion=1").metadata
    assert any(x["name"] == new and x["used_by"] == [] for x in rec)
    assert daemon.request("DELETE", f"/1.0/profiles/{new}").status == 200
    assert daemon.request("DELETE", f"/1.0/profiles/{new}").status == 404


def test_default_profile_is_protected(daemon):
    assert daemon.request("DELETE", "/1.0/profiles/default").status == 400
    assert daemon.request("POST", "/1.0/profiles/default", {"name": "other"}).status == 400
    assert daemon.get("/1.0/profiles/default").status == 200


def test_projects_warnings_cluster_resources(daemon):
    assert daemon.get("/1.0/projects").json == sample("projects.json")
    p = daemon.get("/1.0/projects/default").metadata
    assert set(p) == set(sample("projects-default.json")["metadata"])
    assert p["config"] == sample("projects-default.json")["metadata"]["config"]
    assert daemon.get("/1.0/projects/other").status == 404
    assert daemon.request("POST", "/1.0/projects", {"name": "x"}).status == 201
    x = daemon.get("/1.0/projects/x").metadata
    assert x["config"]["features.profiles"] == "true"
    assert [u.split("?")[0] for u in x["used_by"]] == ["/1.0/profiles/default"]
    assert daemon.request("POST", "/1.0/projects", {"name": "x"}).status == 409
    assert daemon.request("POST", "/1.0/projects", {"name": "a/b"}).status == 400
    assert daemon.request("DELETE", "/1.0/projects/default").status == 403
    assert daemon.request("POST", "/1.0/projects/x", {"name": "y"}).status == 201
    assert daemon.request("DELETE", "/1.0/projects/y").status == 200
    assert daemon.get("/1.0/projects").json == sample("projects.json")
    assert daemon.get("/1.0/warnings").status == 200
    assert isinstance(daemon.get("/1.0/warnings?recursion=1").metadata, list)
    c = daemon.get("/1.0/cluster").metadata
    assert c["enabled"] is False and set(c) == set(sample("cluster.json")["metadata"])
    res = daemon.get("/1.0/resources").metadata
    assert set(res) == set(sample("resources.json")["metadata"])


def test_operations_listing(daemon):
    r = daemon.get("/1.0/operations")
    assert r.status == 200 and isinstance(r.metadata, dict)
    assert daemon.get("/1.0/operations/00000000-0000-0000-0000-000000000000").status == 404


def test_events_not_websocket(daemon):
    r = daemon.get("/1.0/events")
    assert r.status == 400 and r.body.strip() == b"Bad Request"


def test_sql_integrity(daemon):
    out = daemon.run("corrald", "sql", "global", "PRAGMA integrity_check", check=True).stdout
    assert "ok" in out
    bad = daemon.run("corrald", "sql", "global", "SELECT * FROM no_such_table")
    assert bad.returncode != 0 and "no_such_table" in bad.stderr


def test_cors_headers_from_server_config(daemon):
    r = daemon.get("/1.0", headers={"Origin": "https://ui.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    daemon.request("PATCH", "/1.0", {"config": {"core.https_allowed_origin": "https://ui.example",
                                               "core.https_allowed_methods": "GET, POST",
                                               "core.https_allowed_headers": "Content-Type",
                                               "core.https_allowed_credentials": "true"}})
    try:
        r = daemon.get("/1.0", headers={"Origin": "https://ui.example"})
        assert r.headers["Access-Control-Allow-Origin"] == "https://ui.example"
        assert r.headers["Access-Control-Allow-Methods"] == "GET, POST"
        assert r.headers["Access-Control-Allow-Headers"] == "Content-Type"
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
        assert "Access-Control-Allow-Origin" not in daemon.get("/1.0").headers   # no Origin: no headers
        pre = daemon.request("OPTIONS", "/1.0/instances", headers={"Origin": "https://ui.example"})
        assert pre.status == 200 and pre.headers["Access-Control-Allow-Methods"] == "GET, POST"
    finally:
        daemon.request("PATCH", "/1.0", {"config": {k: "" for k in (
            "core.https_allowed_origin", "core.https_allowed_methods", "core.https_allowed_headers",
            "core.https_allowed_credentials")}})


def test_refused_server_keys_say_why(daemon):
    before = daemon.get("/1.0").metadata["config"]
    for key, value in (("core.debug_address", "127.0.0.1:9100"), ("candid.api.url", "https://candid"),
                       ("maas.api.url", "http://maas"), ("storage.images_volume", "default/images")):
        r = daemon.request("PATCH", "/1.0", {"config": {key: value}})
        assert r.status in (400, 501) and key in r.json["error"], r.body
        assert r.json["error"].startswith(("not implemented: ", "not supported on this host: ")), r.body
    assert daemon.get("/1.0").metadata["config"] == before
