"""Request bodies decoded into typed request objects with Go's encoding/json texts (corral/api/decode.py).

Each expected text was read from LXD 5.0.2 answering the same body on this machine."""
import pytest

from corral import apitypes as t
from corral.api.decode import decode
from corral.errors import BadRequest


def refused(cls, body) -> str:
    with pytest.raises(BadRequest) as e:
        decode(cls, body)
    return e.value.message


@pytest.mark.parametrize("cls,body,text", [
    (t.ProfilesPost, {"name": 5}, "json: cannot unmarshal number into Go struct field ProfilesPost.name of type string"),
    (t.ProfilesPost, {"name": "p", "config": []},
     "json: cannot unmarshal array into Go struct field ProfilesPost.config of type map[string]string"),
    (t.ProfilesPost, {"devices": {"a": 1}},
     "json: cannot unmarshal number into Go struct field ProfilesPost.devices of type map[string]string"),
    (t.ProfilesPost, {"devices": {"a": {"type": 3}}},
     "json: cannot unmarshal number into Go struct field ProfilesPost.devices of type string"),
    (t.ProfilesPost, [], "json: cannot unmarshal array into Go value of type api.ProfilesPost"),
    (t.ProfilesPost, "x", "json: cannot unmarshal string into Go value of type api.ProfilesPost"),
    (t.ProfilePut, {"description": 7},
     "json: cannot unmarshal number into Go struct field ProfilePut.description of type string"),
    (t.ProjectsPost, {"name": 7}, "json: cannot unmarshal number into Go struct field ProjectsPost.name of type string"),
    (t.ProjectPut, {"config": 3},
     "json: cannot unmarshal number into Go struct field ProjectPut.config of type map[string]string"),
    (t.NetworksPost, {"name": "x", "type": 3},
     "json: cannot unmarshal number into Go struct field NetworksPost.type of type string"),
    (t.ServerPut, {"config": 3},
     "json: cannot unmarshal number into Go struct field ServerPut.config of type map[string]interface {}"),
    (t.ServerPut, [], "json: cannot unmarshal array into Go value of type api.ServerPut"),
    (t.CertificatesPost, {"token": "yes"},
     "json: cannot unmarshal string into Go struct field CertificatesPost.token of type bool"),
    (t.CertificatesPost, {"projects": "yes"},
     "json: cannot unmarshal string into Go struct field CertificatesPost.projects of type []string"),
    (t.CertificatesPost, {"projects": [1]},
     "json: cannot unmarshal number into Go struct field CertificatesPost.projects of type string"),
    (t.ImageAliasesPost, {"name": "x", "target": 3},
     "json: cannot unmarshal number into Go struct field ImageAliasesPost.target of type string"),
    (t.ImageAliasesEntryPut, {"target": 3},
     "json: cannot unmarshal number into Go struct field ImageAliasesEntryPut.target of type string"),
    (t.WarningPut, {"status": 3}, "json: cannot unmarshal number into Go struct field WarningPut.status of type string"),
])
def test_lxd_texts(cls, body, text):
    assert refused(cls, body) == text


def test_nested_struct_names_the_inner_struct_and_full_path():
    # LXD: "... Go struct field InstanceSource.source.type of type string" for InstancesPost.
    assert refused(t.ImagesPost, {"source": {"type": 3}}) == \
        "json: cannot unmarshal number into Go struct field ImagesPostSource.source.type of type string"


def test_integers_as_go_takes_them():
    assert decode(t.InstanceExecPost, {"width": 100.0}).width == 100
    assert "number 1.5" in refused(t.InstanceExecPost, {"width": 1.5})
    assert refused(t.InstanceExecPost, {"user": -1}) == \
        "json: cannot unmarshal number -1 into Go struct field InstanceExecPost.user of type uint32"
    assert "of type int" in refused(t.InstanceExecPost, {"height": True})


def test_null_and_unknown_fields_leave_defaults():
    r = decode(t.ProfilesPost, {"name": "p", "description": None, "extra": 1})
    assert (r.name, r.description, r.config, r.devices) == ("p", "", {}, {})
    assert r.given("name") and not r.given("description") and not r.given("config")
    assert decode(t.ProfilesPost, None) == t.ProfilesPost()
    # defaults are not shared between objects
    a, b = decode(t.ProfilesPost, {}), decode(t.ProfilesPost, {})
    a.config["x"] = "1"
    assert b.config == {}


def test_json_names_and_config_values():
    r = decode(t.InstanceExecPost, {"command": ["sh"], "wait-for-websocket": True, "record-output": True})
    assert r.wait_for_websocket and r.record_output and r.command == ["sh"]
    # config values: strings, numbers and booleans (stored as their strings by config.validate), a null
    # kept for PATCH to unset; arrays and objects refused as LXD refuses them.
    assert decode(t.ProjectPut, {"config": {"a": "1", "b": 2, "c": True, "d": None}}).config == \
        {"a": "1", "b": 2, "c": True, "d": None}
    assert refused(t.ProjectPut, {"config": {"a": [1]}}) == \
        "json: cannot unmarshal array into Go struct field ProjectPut.config of type string"
    assert decode(t.ImagesPost, {"aliases": [{"name": "a"}]}).aliases == [t.ImageAlias(name="a")]
