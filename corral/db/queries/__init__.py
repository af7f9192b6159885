"""Typed query functions over the global database, one module per object kind."""
import json


def dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def loads(text: str | None):
    return json.loads(text) if text else {}
