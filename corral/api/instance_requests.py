"""Instance request bodies decoded into the instance layer's request objects
(corral/instance/requests.py). A field of the wrong JSON type is refused with the text LXD's Go
decoder gives ("json: cannot unmarshal string into Go struct field InstancesPost.ephemeral of type
bool"); unknown fields are ignored and null is "not given", as in Go. Config and device maps are
only checked to be objects here: their contents are the config and device validators'."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from corral.api.request import check_common_fields, read_json
from corral.errors import BadRequest
from corral.instance.requests import (InstanceCreate, InstanceMove, InstanceSource, InstanceStateChange,
                                      InstanceUpdate, SnapshotCreate, SnapshotRename, SnapshotUpdate)

_STR, _BOOL, _INT, _STRS, _MAP, _DEVICES = "string", "bool", "int", "[]string", "map[string]string", \
    "map[string]map[string]string"


def _kind(v: Any) -> str:
    """How Go's decoder names a JSON value in its errors."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(v), "value")


class _Fields:
    """The fields of one JSON object decoded as Go's encoding/json would into struct `struct`."""

    def __init__(self, body: Any, struct: str, path: str = ""):
        if not isinstance(body, dict):
            raise BadRequest(f"json: cannot unmarshal {_kind(body)} into Go value of type api.{struct}")
        self.body, self.struct, self.path = body, struct, path

    def _bad(self, name: str, value: Any, gotype: str) -> BadRequest:
        what = _kind(value)
        if what == "number" and gotype == _INT:
            what = f"number {json.dumps(value)}"
        return BadRequest(f"json: cannot unmarshal {what} into Go struct field "
                          f"{self.struct}.{self.path}{name} of type {gotype}")

    def sent(self, name: str) -> bool:
        return name in self.body

    def get(self, name: str, gotype: str, default: Any = None) -> Any:
        v = self.body.get(name)
        if v is None:
            return default
        ok = {_STR: isinstance(v, str), _BOOL: isinstance(v, bool),
              _INT: isinstance(v, int) and not isinstance(v, bool),
              _STRS: isinstance(v, list), _MAP: isinstance(v, dict), _DEVICES: isinstance(v, dict)}[gotype]
        if not ok:
            raise self._bad(name, v, gotype)
        if gotype == _STRS:
            for item in v:
                if not isinstance(item, str):
                    raise self._bad(name, item, _STR)
            return list(v)
        return v

    def nested(self, name: str, struct: str, gotype: str) -> "_Fields":
        v = self.body.get(name)
        if v is None:
            v = {}
        elif not isinstance(v, dict):
            raise self._bad(name, v, gotype)
        return _Fields(v, struct, f"{self.path}{name}.")


async def _body(request: web.Request, required: bool = True) -> Any:
    return await read_json(request, required=required)


# ---- the instance requests ------------------------------------------------------------------

def instance_create(body: Any) -> InstanceCreate:
    f = _Fields(body, "InstancesPost")
    s = f.nested("source", "InstanceSource", "api.InstanceSource")
    for name in ("fingerprint", "alias", "protocol", "certificate", "secret", "base-image", "operation"):
        s.get(name, _STR)
    s.get("properties", _MAP)
    source = InstanceSource(type=s.get("type", _STR, "") or "none", source=s.get("source", _STR, ""),
                            project=s.get("project", _STR, ""), instance_only=s.get("instance_only", _BOOL, False),
                            server=s.get("server", _STR, ""), mode=s.get("mode", _STR, ""), image=dict(s.body))
    return InstanceCreate(
        name=f.get("name", _STR, ""), type=f.get("type", _STR, ""), description=f.get("description", _STR, ""),
        config=f.get("config", _MAP, {}), devices=f.get("devices", _DEVICES), profiles=f.get("profiles", _STRS),
        ephemeral=f.get("ephemeral", _BOOL, False), start=f.get("start", _BOOL, False), source=source)


def instance_update(body: Any) -> InstanceUpdate:
    f = _Fields(body, "InstancePut")
    return InstanceUpdate(
        sent=frozenset(k for k in ("architecture", "config", "devices", "profiles", "description", "ephemeral")
                       if f.sent(k)),
        architecture=f.get("architecture", _STR, ""), description=f.get("description", _STR, ""),
        config=f.get("config", _MAP, {}), devices=f.get("devices", _DEVICES), profiles=f.get("profiles", _STRS),
        ephemeral=f.get("ephemeral", _BOOL, False), restore=f.get("restore", _STR, ""))


def state_change(body: Any, struct: str = "InstanceStatePut", path: str = "") -> InstanceStateChange:
    f = _Fields(body, struct, path)
    return InstanceStateChange(action=f.get("action", _STR, ""), timeout=f.get("timeout", _INT, -1),
                               force=f.get("force", _BOOL, False), stateful=f.get("stateful", _BOOL, False))


def bulk_state(body: Any) -> InstanceStateChange:
    """PUT /1.0/instances: {"state": InstanceStatePut}."""
    f = _Fields(body, "InstancesPut")
    if f.body.get("state") is None:
        raise BadRequest("No state given")
    return state_change(f.nested("state", "InstanceStatePut", "api.InstanceStatePut").body,
                        "InstanceStatePut", "state.")


def instance_move(body: Any) -> InstanceMove:
    f = _Fields(body, "InstancePost")
    return InstanceMove(name=f.get("name", _STR, ""), migration=f.get("migration", _BOOL, False),
                        live=f.get("live", _BOOL, False), pool=f.get("pool", _STR, ""),
                        project=f.get("project", _STR, ""), target=f.get("target", _STR, ""),
                        instance_only=f.get("instance_only", _BOOL, False))


def snapshot_create(body: Any) -> SnapshotCreate:
    f = _Fields(body, "InstanceSnapshotsPost")
    return SnapshotCreate(name=f.get("name", _STR, ""), stateful=f.get("stateful", _BOOL, False),
                          expires_at=f.get("expires_at", _STR, ""), description=f.get("description", _STR, ""))


def snapshot_update(body: Any) -> SnapshotUpdate:
    f = _Fields(body, "InstanceSnapshotPut")
    description = f.get("description", _STR, "") if f.sent("description") else None
    return SnapshotUpdate(expires_at=f.get("expires_at", _STR), description=description)


def snapshot_rename(body: Any) -> SnapshotRename:
    f = _Fields(body, "InstanceSnapshotPost")
    name = f.body.get("name")
    if name is not None and not isinstance(name, str):
        raise BadRequest("`name` was not a string")   # LXD decodes this one by hand
    return SnapshotRename(name=name or "", migration=f.get("migration", _BOOL, False))


# ---- reading them from a request ------------------------------------------------------------

# The fields of each request struct (LXD 5.0's api package): any other field LXD's structs share,
# sent with the wrong JSON type, is refused as api/decode.py does (request.check_common_fields).
FIELDS = {
    instance_create: {"architecture", "config", "devices", "ephemeral", "profiles", "stateful", "description",
                      "name", "source", "instance_type", "type", "start"},
    instance_update: {"architecture", "config", "devices", "ephemeral", "profiles", "stateful", "description",
                      "restore"},
    state_change: {"action", "timeout", "force", "stateful"},
    bulk_state: {"state"},
    instance_move: {"name", "migration", "live", "instance_only", "container_only", "target", "pool", "project"},
    snapshot_create: {"name", "stateful", "expires_at"},
    snapshot_update: {"expires_at"},
    snapshot_rename: {"name", "migration", "target", "live"},
}


async def read(request: web.Request, decode, *, required: bool = True):
    """The request's JSON body decoded by `decode` (one of the functions above). As api/decode.py's
    read: a body of JSON null is refused, and so are LXD's shared fields sent with the wrong type."""
    body = await _body(request, required)
    if body is None and required:
        raise BadRequest("Invalid JSON: expected an object")
    obj = decode(body)
    if isinstance(body, dict):
        check_common_fields(body, skip=FIELDS.get(decode, ()))
    return obj
