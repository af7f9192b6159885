"""LXD's `?filter=` for collections (api_filtering): `key eq value` clauses joined by and/or,
optionally negated with `not`. Keys are object paths: name, status, type, config.image.os, ..."""
from __future__ import annotations

import shlex

from corral.errors import BadRequest


def _lookup(obj: dict, key: str):
    if key in obj:
        return obj[key]
    head, _, rest = key.partition(".")
    if rest and isinstance(obj.get(head), dict):
        # config keys contain dots themselves: try the whole remainder first
        sub = obj[head]
        if rest in sub:
            return sub[rest]
        return _lookup(sub, rest)
    return None


def parse(expr: str) -> list:
    """A list of (joiner, negate, key, op, value) clauses."""
    try:
        tokens = shlex.split(expr)
    except ValueError as e:
        raise BadRequest(f"Invalid filter: {e}") from None
    clauses, joiner, i = [], "and", 0
    while i < len(tokens):
        negate = tokens[i].lower() == "not"
        if negate:
            i += 1
        if i + 3 > len(tokens):
            raise BadRequest(f"Invalid filter: incomplete clause in {expr!r}")
        key, op, value = tokens[i:i + 3]
        if op.lower() not in ("eq", "ne"):
            raise BadRequest(f'Invalid filter operator "{op}"')
        clauses.append((joiner, negate, key, op.lower(), value))
        i += 3
        if i < len(tokens):
            joiner = tokens[i].lower()
            if joiner not in ("and", "or"):
                raise BadRequest(f'Invalid filter: expected "and" or "or", got "{tokens[i]}"')
            i += 1
    return clauses


def matches(obj: dict, clauses: list) -> bool:
    result = True
    for n, (joiner, negate, key, op, value) in enumerate(clauses):
        v = _lookup(obj, key)
        ok = (str(v).lower() == value.lower()) if isinstance(v, bool) else (str(v) == value if v is not None else False)
        if op == "ne":
            ok = not ok
        if negate:
            ok = not ok
        result = ok if n == 0 else (result and ok if joiner == "and" else result or ok)
    return result
