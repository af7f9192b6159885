"""Byte sizes as LXD writes them ("10GiB", "500MB", "1073741824")."""
from __future__ import annotations

import re

from corral.errors import BadRequest

UNITS = {"": 1, "B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15, "EB": 10**18,
         "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50, "EiB": 2**60}


def parse_size(value: str, key: str = "size") -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value or "")
    if not m or m.group(2) not in UNITS:
        raise BadRequest(f'Invalid value for "{key}": "{value}" is not a byte size')
    return int(float(m.group(1)) * UNITS[m.group(2)])
