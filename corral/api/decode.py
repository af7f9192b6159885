"""JSON request bodies into typed request objects (corral/apitypes.py), as Go's encoding/json
decodes them into LXD's api.* structs: the type checks are written once, here, with Go's error
texts ("json: cannot unmarshal number into Go struct field ProfilesPost.name of type string").

Go's rules, kept: a JSON null leaves a field at its default; unknown fields are ignored; a wrong
type anywhere in the body is a 400 naming the struct, the field path and the Go type expected.
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

from aiohttp import web

from corral.api.request import check_common_fields, read_json
from corral.apitypes import ConfigValue
from corral.errors import BadRequest

T = TypeVar("T")


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def go_name(cls) -> str:
    return getattr(cls, "GO_NAME", cls.__name__)


def _optional(tp) -> tuple[Any, bool]:
    """(the type inside `X | None`, whether it was optional)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def go_type(tp) -> str:
    tp, _ = _optional(tp)
    if tp is Any:
        return "interface {}"
    if tp is ConfigValue:
        return "string"
    if dataclasses.is_dataclass(tp):
        return f"api.{go_name(tp)}"
    origin = typing.get_origin(tp)
    if origin is dict:
        return f"map[string]{go_type(typing.get_args(tp)[1])}"
    if origin is list:
        return f"[]{go_type(typing.get_args(tp)[0])}"
    return {str: "string", bool: "bool", int: "int64", float: "float64"}[tp]


@functools.cache
def _fields(cls) -> list[tuple[str, str, Any, str | None]]:
    """(attribute, JSON name, type, Go type override) for each field of a request class."""
    hints = typing.get_type_hints(cls)
    return [(f.name, f.metadata.get("json", f.name), hints[f.name], f.metadata.get("go"))
            for f in dataclasses.fields(cls)]


class _Mismatch(Exception):
    def __init__(self, kind: str, gotype: str, number: str = ""):
        self.kind, self.gotype, self.number = kind, gotype, number


def _value(v: Any, tp, go: str | None, path: str, struct_err) -> Any:
    """`v` as `tp` (v is not None). Raises _Mismatch for this level, or BadRequest from a nested struct."""
    tp, _ = _optional(tp)
    if tp is Any:
        return v
    if tp is ConfigValue:
        if not isinstance(v, (str, int, float)):
            raise _Mismatch(_json_kind(v), go or "string")
        return v
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            raise _Mismatch(_json_kind(v), go or go_type(tp))
        return _struct(tp, v, path)
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(v, dict):
            raise _Mismatch(_json_kind(v), go or go_type(tp))
        elem = typing.get_args(tp)[1]
        # A null map value stays None (PATCH uses it to unset a key; Go would give the zero value).
        return {k: (None if x is None else _value(x, elem, None, path, struct_err)) for k, x in v.items()}
    if origin is list:
        if not isinstance(v, list):
            raise _Mismatch(_json_kind(v), go or go_type(tp))
        elem = typing.get_args(tp)[0]
        return [_zero(elem) if x is None else _value(x, elem, None, path, struct_err) for x in v]
    if tp is bool:
        if not isinstance(v, bool):
            raise _Mismatch(_json_kind(v), go or "bool")
        return v
    if tp is int:
        if isinstance(v, float) and not v.is_integer() or isinstance(v, float) and abs(v) >= 2**63:
            raise _Mismatch("number", go or "int64", f" {v:g}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Mismatch(_json_kind(v), go or "int64")
        if (go or "").startswith("uint") and v < 0:
            raise _Mismatch("number", go, f" {int(v)}")
        return int(v)
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Mismatch(_json_kind(v), go or "float64")
        return float(v)
    if not isinstance(v, tp):
        raise _Mismatch(_json_kind(v), go or go_type(tp))
    return v


def _zero(tp) -> Any:
    tp, optional = _optional(tp)
    if optional:
        return None
    if dataclasses.is_dataclass(tp):
        return tp()
    return {str: "", bool: False, int: 0, float: 0.0}.get(tp) if not typing.get_origin(tp) else typing.get_origin(tp)()


def _struct(cls: type[T], body: dict, prefix: str = "") -> T:
    values: dict[str, Any] = {}
    present = set()
    fields = {key: (attr, tp, go) for attr, key, tp, go in _fields(cls)}
    for key, v in body.items():   # in the body's order: Go reports the first error it meets
        if key not in fields or v is None:   # unknown, or null: Go leaves the field as it was
            continue
        attr, tp, go = fields[key]
        present.add(attr)
        path = f"{prefix}{key}"
        try:
            values[attr] = _value(v, tp, go, path + ".", None)
        except _Mismatch as m:
            raise BadRequest(f"json: cannot unmarshal {m.kind}{m.number} into Go struct field "
                             f"{go_name(cls)}.{path} of type {m.gotype}") from None
    obj = cls(**values)
    object.__setattr__(obj, "_present", frozenset(present))
    return obj


def decode(cls: type[T], body: Any) -> T:
    """A request object of `cls` from a parsed JSON body (null: all defaults, as Go's decoder)."""
    if body is None:
        return _struct(cls, {})
    if not isinstance(body, dict):
        raise BadRequest(f"json: cannot unmarshal {_json_kind(body)} into Go value of type api.{go_name(cls)}")
    return _struct(cls, body)


async def read(request: web.Request, cls: type[T], *, required: bool = True) -> T:
    """The request's JSON body as a `cls` request object (an empty body is refused unless not
    `required`). Stricter than Go: a body that is JSON null is refused (a PUT of null would
    otherwise reset everything), and so are the well-known fields other structs have when sent
    with the wrong type (request.check_common_fields)."""
    body = await read_json(request, required=required)
    if body is None:
        raise BadRequest("Invalid JSON: expected an object")
    obj = decode(cls, body)
    check_common_fields(body, skip={key for _, key, _, _ in _fields(cls)})
    return obj
