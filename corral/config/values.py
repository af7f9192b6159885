"""One parser per kind of config value, as LXD's `validate` and `units` packages read them.

Every key declaration (corral/config/*.py) and every reader of a config value uses these: a boolean
is `parse_bool` (strict, for validation) or `is_true` (lenient, for reading a stored value), a size
is `parse_size`, a duration of the snapshots.expiry kind is `parse_expiry`, a cron schedule is
`parse_schedule`, and so on. Each raises ValueError with LXD's words; the registry (keys.py) puts
the key's name in front.
"""
from __future__ import annotations

import re
from typing import Callable

INT64_MAX = 2**63 - 1

# ---- booleans ---------------------------------------------------------------------------------

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off")


def parse_bool(v: str) -> bool:
    """LXD's validate.IsBool: true/false, 1/0, yes/no, on/off, any case."""
    lv = v.lower()
    if lv in TRUE:
        return True
    if lv in FALSE:
        return False
    raise ValueError(f"Invalid value for a boolean \"{v}\"")


def is_true(value: str | None, default: bool = False) -> bool:
    """A stored boolean as LXD reads it (shared.IsTrue: "true", "1", "yes", "on"); unset or empty:
    `default` (shared.IsTrueOrEmpty when True)."""
    if value is None or value == "":
        return default
    return value.strip().lower() in TRUE


# ---- integers ---------------------------------------------------------------------------------

def parse_int(v: str) -> int:
    """An int64, as LXD's validate.IsInt64."""
    try:
        n = int(v) if len(v) <= 24 else None
    except ValueError:
        n = None
    if n is None or not -2**63 <= n <= INT64_MAX:
        raise ValueError(f"Invalid value for an integer \"{v[:32]}\"")
    return n


def parse_uint(v: str) -> int:
    n = parse_int(v)
    if n < 0:
        raise ValueError(f"Invalid value for a non-negative integer \"{v}\"")
    return n


def one_of(*choices: str) -> Callable[[str], str]:
    def check(v: str) -> str:
        if v not in choices:
            raise ValueError(f"Invalid value \"{v}\" (not one of {', '.join(choices)})")
        return v
    return check


# ---- sizes and rates --------------------------------------------------------------------------

_SIZE_UNITS = {
    "": 1, "B": 1,
    "kB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4, "PB": 1000**5, "EB": 1000**6,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4, "PiB": 1024**5, "EiB": 1024**6,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGTPE]i?B|B)?\s*$")


def parse_size(v: str) -> int:
    """LXD sizes (units.ParseByteSizeString): '512MiB', '1GB', '1024' (bytes)."""
    m = _SIZE_RE.match(v)
    if not m:
        raise ValueError(f"Invalid size \"{v}\"")
    unit = m.group(2) or ""
    if unit and unit[0] == "K" and unit not in _SIZE_UNITS:
        unit = "k" + unit[1:]
    if unit not in _SIZE_UNITS:
        raise ValueError(f"Invalid size unit in \"{v}\"")
    number, mult = m.group(1), _SIZE_UNITS[unit]
    if len(number) > 40:
        raise ValueError(f"Invalid integer: {v[:48]}...")
    if "." in number:
        whole, frac = number.split(".")
        size = int(whole) * mult + int(frac) * mult // 10 ** len(frac)
    else:
        size = int(number) * mult
    # LXD's units.ParseByteSizeString works in int64: a bigger size is an error, not a wrap-around.
    if size > INT64_MAX:
        raise ValueError(f"Overflow multiplying {number} with {mult}" if mult > 1 else f"Invalid integer: {v}")
    return size


def parse_size_or_percent(v: str) -> int | str:
    if v.endswith("%"):
        n = parse_int(v[:-1])
        if not 0 < n <= 100:
            raise ValueError(f"Invalid percentage \"{v}\"")
        return v
    return parse_size(v)


_RATE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kMGT]?)(bit)?\s*")


def parse_bit_rate(v: str) -> int:
    """Network limits (limits.ingress/egress/max): "10Mbit", "1Gbit", "100kbit", "500bit"; bits/s."""
    m = _RATE_RE.fullmatch(v)
    if not m:
        raise ValueError(f'Invalid rate "{v}" (use e.g. 10Mbit)')
    mult = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2)]
    return int(float(m.group(1)) * mult)


# ---- durations and schedules ------------------------------------------------------------------

_EXPIRY_UNITS = {"S": 1, "M": 60, "H": 3600, "d": 86400, "w": 604800, "m": 2592000, "y": 31536000}
_EXPIRY_TERM = re.compile(r"(\d+)([SMHdwmy])")


def parse_expiry(v: str) -> int:
    """LXD's GetExpiry (snapshots.expiry, core.remote_token_expiry, cluster.join_token_expiry):
    space-separated terms "<n><unit>", units S(econds) M(inutes) H(ours) d w m(onths) y, each unit
    at most once; the length in seconds (0 for an empty expression)."""
    seen: set[str] = set()
    total = 0
    for term in v.strip().split(" ") if v.strip() else []:
        m = _EXPIRY_TERM.fullmatch(term)
        if not m or m[2] in seen:
            raise ValueError("Invalid expiry expression")
        seen.add(m[2])
        total += int(m[1]) * _EXPIRY_UNITS[m[2]]
    return total


CRON_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@annually": "0 0 1 1 *",
                "@yearly": "0 0 1 1 *"}
INSTANCE_ONLY = ("@never", "@startup")   # @never stops a profile's schedule applying; @startup: on start


def crons(v: str) -> list[str]:
    """The cron expressions of a schedule: a cron expression ("<minute> <hour> <dom> <month> <dow>"),
    an alias, or a comma-separated list of them (LXD's validate.IsCron); @never/@startup give none."""
    from croniter import croniter
    out = []
    for part in (p.strip() for p in v.split(",")):
        if part in CRON_ALIASES:
            out.append(CRON_ALIASES[part])
            continue
        if part in INSTANCE_ONLY:
            continue
        if len(part.split()) != 5:
            raise ValueError("Schedule must be of the form: <minute> <hour> <day-of-month> <month> <day-of-week>")
        if not croniter.is_valid(part):
            raise ValueError(f'Error parsing schedule "{part}"')
        out.append(part)
    return out


def parse_schedule(v: str) -> list[str]:
    """An instance's snapshots.schedule."""
    return crons(v)


def parse_volume_schedule(v: str) -> list[str]:
    """A custom volume's snapshots.schedule: LXD's volume aliases lack @startup and @never."""
    for part in (p.strip() for p in v.split(",")):
        if part in INSTANCE_ONLY:
            raise ValueError(f'Error parsing schedule "{part}"')
    return crons(v)


# ---- addresses and sets -----------------------------------------------------------------------

def parse_address(v: str) -> str:
    """host:port, [v6]:port, or :port (LXD accepts a bare host and adds 8443)."""
    if not re.match(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.:-]*)(:\d{1,5})?$", v):
        raise ValueError(f"Invalid address \"{v}\"")
    return v


def parse_cpuset(v: str) -> str:
    """limits.cpu: a count ("2") or a set ("0-1,3")."""
    if re.fullmatch(r"\d+", v):
        if int(v) < 1:
            raise ValueError("CPU count must be at least 1")
        return v
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", v):
        raise ValueError(f"Invalid CPU set \"{v}\"")
    return v
