"""The key registry: every scope's keys (server, instance, project, network-*, pool-*, volume-*,
device-*), declared once with their validator (corral/config/values.py)."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Callable

from corral.errors import BadRequest
from corral.config.values import (  # noqa: F401  (one parser per value kind; re-exported for the declarations)
    INT64_MAX, is_true, one_of, parse_address, parse_bit_rate, parse_bool, parse_cpuset, parse_expiry,
    parse_int, parse_size, parse_size_or_percent, parse_uint,
)

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
    local: bool = False            # per member: server keys in the local database, pool keys of StoragePoolNodeConfigKeys
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
