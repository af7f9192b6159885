"""The key registry and the validators keys are declared with."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Callable

from corral.errors import BadRequest

SERVER = "server"
INSTANCE = "instance"
PROJECT = "project"


class ConfigError(BadRequest):
    pass


class KeyRefused(ConfigError):
    """A declared key Corral refuses (not implemented, or not possible on this host)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message, status or (501 if message.startswith("not implemented") else 400))


@dataclass(frozen=True)
class Key:
    name: str                      # exact name, or a pattern with "*" (user.*, volatile.*.hwaddr)
    scope: str
    parse: Callable[[str], Any] = str
    default: str = ""
    live: bool = True              # can change while instances run / daemon runs
    local: bool = False            # server keys stored per member (LXD's "local" scope)
    hidden: bool = False           # secrets: never returned by GET (core.trust_password)
    description: str = ""
    # Declared but refused: the whole reason, e.g. "not implemented: limits.hugepages.2MB (...)" or
    # "not supported on this host: ...". A refused key may be set to "" or to its default (which is
    # what Corral does anyway); any other value is refused with this text.
    refused: str = ""

    @property
    def is_pattern(self) -> bool:
        return "*" in self.name


_REGISTRY: dict[str, dict[str, Key]] = {}

# Every config key name, in every scope (instance, profile, server, project, network, storage pool
# and volume, device options): ASCII letters, digits and "_ . - :", at most 255 characters. A key
# name reaches generated files (liblxc's lxc.environment = NAME=value): nothing else may pass.
KEY_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,255}")
KEY_NAME_RULE = 'key names may only contain ASCII letters, digits, "_", ".", "-" and ":" (at most 255)'


def valid_key_name(name) -> bool:
    return isinstance(name, str) and KEY_NAME_RE.fullmatch(name) is not None


def check_key_name(name, what: str = "configuration key") -> str:
    """The key name, or a ConfigError (400) naming it, escaped, and the rule."""
    if not valid_key_name(name):
        shown = name.encode("unicode_escape").decode("ascii") if isinstance(name, str) else repr(name)
        raise ConfigError(f'Invalid {what} "{shown}": {KEY_NAME_RULE}')
    return name


def declare(*keys: Key) -> None:
    for k in keys:
        _REGISTRY.setdefault(k.scope, {})[k.name] = k


def declared(scope: str) -> dict[str, Key]:
    return dict(_REGISTRY.get(scope, {}))


def lookup(scope: str, name: str) -> Key | None:
    if not valid_key_name(name):
        return None
    keys = _REGISTRY.get(scope, {})
    if name in keys:
        return keys[name]
    # The most specific pattern wins: volatile.*.hwaddr before volatile.*.
    found = [k for k in keys.values()
             if k.is_pattern and fnmatch.fnmatchcase(name, k.name) and len(name) > len(k.name) - 1]
    return max(found, key=lambda k: len(k.name)) if found else None


def as_string(raw, what: str) -> str:
    """A config value as LXD stores it: booleans and numbers become strings; other types are refused."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        return str(raw)
    if not isinstance(raw, str):
        raise ConfigError(f"Invalid value for {what}: must be a string")
    return raw


def validate(scope: str, config: dict) -> dict[str, str]:
    """Check every key and value; return the config with values as strings.

    Raises ConfigError naming the first bad key, in LXD's words."""
    if not isinstance(config, dict):
        raise ConfigError("Invalid config: expected a map of keys to values")
    out: dict[str, str] = {}
    for name, raw in config.items():
        check_key_name(name)
        if raw is None:
            continue
        raw = as_string(raw, f'config key "{name}"')
        key = lookup(scope, name)
        if key is None:
            raise ConfigError(f"Unknown configuration key: {name}")
        check_value(key, name, raw)
        out[name] = raw
    return out


def check_value(key: Key, name: str, raw: str, what: str = "config key") -> None:
    """Parse `raw` with the key's validator (ConfigError naming the key), then refuse it if the key
    is declared refused and `raw` is not its default."""
    if raw == "":
        return
    try:
        key.parse(raw)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"Invalid value for {what} \"{name}\": {e}") from None
    if key.refused and raw != key.default:
        raise KeyRefused(key.refused.replace(key.name, name) if key.is_pattern else key.refused)


def refused(name: str, scope: str, reason: str, parse: Callable[[str], Any] = str, default: str = "") -> Key:
    """A documented key Corral declares and refuses: `reason` is the message's whole text."""
    return Key(name, scope, parse, default=default, refused=reason)


def not_implemented(name: str, scope: str, why: str = "", parse: Callable[[str], Any] = str,
                    default: str = "") -> Key:
    return refused(name, scope, f"not implemented: {name}" + (f" ({why})" if why else ""), parse, default)


def not_on_host(name: str, scope: str, why: str, parse: Callable[[str], Any] = str, default: str = "") -> Key:
    return refused(name, scope, f"not supported on this host: {name}: {why}", parse, default)


def value(scope: str, config: dict, name: str) -> Any:
    """The parsed value of `name` in `config`, or its declared default."""
    key = lookup(scope, name)
    if key is None:
        raise KeyError(name)
    raw = config.get(name, "")
    if raw == "":
        raw = key.default
    return key.parse(raw) if raw != "" else None


# ---- validators -------------------------------------------------------------------------

def parse_bool(v: str) -> bool:
    lv = v.lower()
    if lv in ("true", "1", "yes", "on"):
        return True
    if lv in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"Invalid value for a boolean \"{v}\"")


def is_true(value: str | None, default: bool = False) -> bool:
    """A boolean option as LXD reads it ("true", "1", "yes", "on"); unset or empty: `default`."""
    if value is None or value == "":
        return default
    return value.strip().lower() in ("true", "1", "yes", "on")


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


_SIZE_UNITS = {
    "": 1, "B": 1,
    "kB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4, "PB": 1000**5, "EB": 1000**6,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4, "PiB": 1024**5, "EiB": 1024**6,
}
INT64_MAX = 2**63 - 1
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGTPE]i?B|B)?\s*$")


def parse_size(v: str) -> int:
    """LXD sizes: '512MiB', '1GB', '1024' (bytes)."""
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


_EXPIRY_UNITS = {"M": 60, "H": 3600, "d": 86400, "w": 604800, "m": 2592000, "y": 31536000}


def parse_expiry(v: str) -> int:
    """snapshots.expiry: "1d", "2w 3d", "6H" (minutes M, hours H, days d, weeks w, months m, years y);
    the length in seconds."""
    spec = v.replace(" ", "")
    if not re.fullmatch(r"(\d+[MHdwmy])+", spec):
        raise ValueError(f'Invalid expiry "{v}" (e.g. "3d", "1w", "6H")')
    return sum(int(n) * _EXPIRY_UNITS[u] for n, u in re.findall(r"(\d+)([MHdwmy])", spec))


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
