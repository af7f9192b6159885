"""Wrongly typed request fields get LXD's decoding error (a 400) on every endpoint of the API's
decoder, and change nothing. Texts as LXD 5.0.2 gives them for the same bodies."""
import pytest

from helpers import unique

CASES = [
    ("POST", "/1.0/profiles", {"name": 5}, "ProfilesPost.name of type string"),
    ("PUT", "/1.0/profiles/default", {"description": 7}, "ProfilePut.description of type string"),
    ("PATCH", "/1.0/profiles/default", {"devices": {"eth0": 1}}, "ProfilePut.devices of type map[string]string"),
    ("POST", "/1.0/profiles/default", {"name": 7}, "ProfilePost.name of type string"),
    ("POST", "/1.0/projects", {"name": "x", "config": 3}, "ProjectsPost.config of type map[string]string"),
    ("PUT", "/1.0/projects/default", {"config": 3}, "ProjectPut.config of type map[string]string"),
    ("POST", "/1.0/networks", {"name": "x", "type": 3}, "NetworksPost.type of type string"),
    ("PUT", "/1.0", {"config": 3}, "ServerPut.config of type map[string]interface {}"),
    ("PATCH", "/1.0", {"config": []}, "ServerPut.config of type map[string]interface {}"),
    ("POST", "/1.0/certificates", {"type": "client", "token": "yes"}, "CertificatesPost.token of type bool"),
    ("POST", "/1.0/images/aliases", {"name": "x", "target": 3}, "ImageAliasesPost.target of type string"),
    ("PUT", "/1.0/images/aliases/nope", {"target": 3}, "ImageAliasesEntryPut.target of type string"),
    ("POST", "/1.0/images", {"source": {"type": 3}}, "ImagesPostSource.source.type of type string"),
    ("PUT", "/1.0/warnings/nope", {"status": 3}, "WarningPut.status of type string"),
]


@pytest.mark.parametrize("method,path,body,tail", CASES, ids=[f"{m} {p}" for m, p, _, _ in CASES])
def test_wrong_types_refused_with_lxd_text(daemon, method, path, body, tail):
    before = daemon.get("/1.0").metadata["config"], daemon.get("/1.0/profiles/default").metadata
    r = daemon.request(method, path, body)
    assert r.status == 400, r.body
    kind = {int: "number", str: "string", list: "array"}
    assert r.json["error"].startswith("json: cannot unmarshal "), r.json
    assert r.json["error"].endswith(f"into Go struct field {tail}"), r.json
    assert any(f"unmarshal {k} " in r.json["error"] for k in kind.values())
    assert (daemon.get("/1.0").metadata["config"], daemon.get("/1.0/profiles/default").metadata) == before


def test_not_an_object(daemon):
    r = daemon.request("POST", "/1.0/profiles", ["x"])
    assert r.status == 400 and r.json["error"] == "json: cannot unmarshal array into Go value of type api.ProfilesPost"


def test_patch_keeps_what_was_not_sent(daemon):
    name = unique("pf")
    assert daemon.request("POST", "/1.0/profiles", {"name": name, "description": "d1",
                                                    "config": {"user.a": "1"}}).status == 201
    try:
        # null is "not sent" (Go leaves the field as it was): the description stays
        assert daemon.request("PATCH", f"/1.0/profiles/{name}", {"description": None,
                                                                 "config": {"user.b": "2"}}).status == 200
        p = daemon.get(f"/1.0/profiles/{name}").metadata
        assert p["description"] == "d1" and p["config"] == {"user.a": "1", "user.b": "2"}
        assert daemon.request("PUT", f"/1.0/profiles/{name}", {"config": {}}).status == 200
        p = daemon.get(f"/1.0/profiles/{name}").metadata
        assert p["description"] == "" and p["config"] == {}
    finally:
        daemon.request("DELETE", f"/1.0/profiles/{name}")


def test_stricter_than_go_null_body_and_shared_field_types(daemon):
    before = daemon.get("/1.0").metadata["config"]
    # null would decode to an empty ServerPut (a PUT resetting everything): refused
    r = daemon.request("PUT", "/1.0", raw=b"null", headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json["error"] == "Invalid JSON: expected an object"
    # "name" is no field of ServerPut, but a name that is not a string is refused everywhere
    r = daemon.request("PATCH", "/1.0", {"name": 3, "config": {}})
    assert r.status == 400 and r.json["error"] == 'Invalid value for field "name": expected string'
    assert daemon.get("/1.0").metadata["config"] == before
    # the first wrong field in the body's order is the one named, as Go's decoder does
    r = daemon.request("POST", "/1.0/profiles", raw=b'{"devices": [], "name": 12}',
                       headers={"Content-Type": "application/json"})
    assert r.json["error"].endswith("ProfilesPost.devices of type map[string]map[string]string")
