"""Byte sizes as LXD writes them ("10GiB", "500MB", "1073741824")."""
from __future__ import annotations

from corral.config import keys
from corral.errors import BadRequest


def parse_size(value: str, key: str = "size") -> int:
    try:
        return keys.parse_size(value or "")
    except ValueError as e:
        raise BadRequest(f'Invalid value for "{key}": "{value[:64]}" is not a byte size ({e})') from None
