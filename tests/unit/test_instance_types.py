"""The instance type registry and the instance request decoders (no daemon, no root)."""
import pytest

from corral.api import instance_requests as decode
from corral.errors import BadRequest
from corral.instance import types
from corral.instance.container import Container
from corral.instance.fake import FakeInstance
from corral.instance.instance import Instance
from corral.instance.model import Loaded


def test_registry_has_container_and_fake():
    assert types.names() == ["container", "fake", "virtual-machine"]
    assert types.instance_class("container") is Container
    assert types.instance_class("fake") is FakeInstance
    assert issubclass(FakeInstance, Instance) and FakeInstance.host_devices is False


def test_unknown_and_unbuilt_types():
    with pytest.raises(BadRequest) as e:
        types.instance_class("foo")
    assert e.value.message == "Invalid instance type"
    assert types.instance_class("virtual-machine").api_type == "virtual-machine"   # QEMU (corral/instance/vm.py)


class _Insts:
    """Just enough of the manager for the manager-free parts of an instance object."""
    d = None
    type_map = {"container": "fake"}

    def driver_for(self, cls):
        return f"driver of {cls.type_name}"


def test_instance_object_wraps_its_record():
    rec = {"name": "c1", "project": "p", "type": "container", "architecture": "x86_64", "config": {"a": "1"},
           "devices": {}, "ephemeral": False, "profiles": [], "stateful": False, "description": "",
           "created_at": "t", "last_used_at": "t"}
    inst = FakeInstance(_Insts(), Loaded(rec, {"a": "1", "b": "2"}, {}))
    assert (inst.name, inst.project, inst.config["b"]) == ("c1", "p", "2")
    assert inst.driver == "driver of fake"
    r = inst.render("Stopped")
    assert r["status_code"] == 102 and r["expanded_config"] == {"a": "1", "b": "2"} and r["type"] == "container"


@pytest.mark.parametrize("fn, body, text", [
    (decode.instance_create, {"ephemeral": "yes"},
     "json: cannot unmarshal string into Go struct field InstancesPost.ephemeral of type bool"),
    (decode.instance_create, {"profiles": "default"},
     "json: cannot unmarshal string into Go struct field InstancesPost.profiles of type []string"),
    (decode.instance_create, {"name": 5}, "json: cannot unmarshal number into Go struct field InstancesPost.name of type string"),
    (decode.instance_create, {"source": "none"},
     "json: cannot unmarshal string into Go struct field InstancesPost.source of type api.InstanceSource"),
    (decode.instance_create, {"source": {"type": 5}},
     "json: cannot unmarshal number into Go struct field InstanceSource.source.type of type string"),
    (decode.instance_create, {"source": {"type": "copy", "instance_only": "x"}},
     "json: cannot unmarshal string into Go struct field InstanceSource.source.instance_only of type bool"),
    (decode.instance_create, [1], "json: cannot unmarshal array into Go value of type api.InstancesPost"),
    (decode.state_change, {"action": "start", "timeout": "5"},
     "json: cannot unmarshal string into Go struct field InstanceStatePut.timeout of type int"),
    (decode.state_change, {"action": "start", "timeout": 1.5},
     "json: cannot unmarshal number 1.5 into Go struct field InstanceStatePut.timeout of type int"),
    (decode.state_change, {"action": "stop", "force": "yes"},
     "json: cannot unmarshal string into Go struct field InstanceStatePut.force of type bool"),
    (decode.state_change, [], "json: cannot unmarshal array into Go value of type api.InstanceStatePut"),
    (decode.bulk_state, {"state": "x"},
     "json: cannot unmarshal string into Go struct field InstancesPut.state of type api.InstanceStatePut"),
    (decode.bulk_state, {"state": {"action": 5}},
     "json: cannot unmarshal number into Go struct field InstanceStatePut.state.action of type string"),
    (decode.bulk_state, {}, "No state given"),
    (decode.instance_move, {"name": "c2", "migration": "x"},
     "json: cannot unmarshal string into Go struct field InstancePost.migration of type bool"),
    (decode.instance_move, {"pool": 5}, "json: cannot unmarshal number into Go struct field InstancePost.pool of type string"),
    (decode.instance_update, {"ephemeral": "x"},
     "json: cannot unmarshal string into Go struct field InstancePut.ephemeral of type bool"),
    (decode.instance_update, {"restore": 5},
     "json: cannot unmarshal number into Go struct field InstancePut.restore of type string"),
    (decode.snapshot_create, {"stateful": "x"},
     "json: cannot unmarshal string into Go struct field InstanceSnapshotsPost.stateful of type bool"),
    (decode.snapshot_rename, {"name": 5}, "`name` was not a string"),
])
def test_bad_fields_get_lxds_text(fn, body, text):
    """The texts LXD 5.0.2 answers for these bodies (checked against a running LXD)."""
    with pytest.raises(BadRequest) as e:
        fn(body)
    assert e.value.message == text


def test_decoded_requests():
    req = decode.instance_create({"name": "c1", "source": {"type": "image", "alias": "busybox"},
                                  "profiles": ["default"], "config": {"user.a": 1}, "start": True})
    assert (req.name, req.type, req.source.type, req.source.image["alias"], req.start) == \
        ("c1", "", "image", "busybox", True)
    assert req.config == {"user.a": 1}   # values are the config validator's to coerce or refuse
    assert decode.instance_create({}).source.type == "none"
    upd = decode.instance_update({"description": "x", "config": {}})
    assert upd.sent == {"description", "config"} and upd.profiles is None
    st = decode.bulk_state({"state": {"action": "stop", "force": True, "timeout": 3}})
    assert (st.action, st.force, st.timeout) == ("stop", True, 3)
    assert decode.snapshot_update({"expires_at": "2030-01-01T00:00:00Z"}).description is None
    assert decode.snapshot_update({"description": None}).description == ""
