"""LXD's `?filter=` for collections (api_filtering): `key eq value` clauses joined by and/or,
optionally negated with `not`. Keys are object paths: name, status, type, config.image.os, ..."""
from __future__ import annotations

import re
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


def _value_matches(v, value: str) -> bool:
    """LXD's rule: a string field matches the value as a case-insensitive regular expression,
    anchored at both ends unless the value has ^ or $ itself; an invalid expression compares
    case-insensitively as plain text. Other fields compare by their text form."""
    if v is None:
        return False
    if isinstance(v, bool):
        return str(v).lower() == value.lower()
    if not isinstance(v, str):
        return str(v) == value
    if _safe_regex(value, v):
        pattern = value if ("^" in value or "$" in value) else f"^(?:{value})$"
        try:
            return re.search(pattern, v, re.IGNORECASE) is not None
        except re.error:
            pass
    return v.lower() == value.lower()


_QUANTIFIED_GROUP = re.compile(r"\)\s*[*+?{]")
_QUANTIFIER = re.compile(r"(?<!\\)[*+{]")


def _safe_regex(pattern: str, subject: str) -> bool:
    """Python's regex engine backtracks (LXD's Go one does not): a quantified group, more than two
    unbounded quantifiers or a long subject could make one request burn the event loop, so such
    patterns compare as plain text instead."""
    return (len(pattern) <= 256 and len(subject) <= 4096 and not _QUANTIFIED_GROUP.search(pattern)
            and len(_QUANTIFIER.findall(pattern)) <= 2)


def matches(obj: dict, clauses: list) -> bool:
    result = True
    for n, (joiner, negate, key, op, value) in enumerate(clauses):
        ok = _value_matches(_lookup(obj, key), value)
        if op == "ne":
            ok = not ok
        if negate:
            ok = not ok
        result = ok if n == 0 else (result and ok if joiner == "and" else result or ok)
    return result
