"""distrobuilder's definition schema (shared/definition.go), as data: every section, key, type and the
allowed values, so a definition is checked key by key and an error names the offending key's path
(`packages.sets[2].action: invalid value "instal" (one of: install, remove)`).

A type is one of: "str", "bool", "uint", ("enum", values), ("list", type), ("map", type) or a dict
(a struct: key -> type). Structs refuse unknown keys.
"""
from __future__ import annotations

# Every downloader distrobuilder knows (its Validate list); corral-builder implements those in
# corral.builder.sources.SOURCES and says so clearly for the others at build time.
DOWNLOADERS = ("almalinux-http", "alpinelinux-http", "alt-http", "apertis-http", "archlinux-http", "busybox",
               "centos-http", "springdalelinux-http", "debootstrap", "fedora-http", "gentoo-http",
               "ubuntu-http", "sabayon-http", "docker-http", "oraclelinux-http", "openeuler-http",
               "opensuse-http", "openwrt-http", "plamolinux-http", "voidlinux-http", "funtoo-http",
               "rootfs-http", "rockylinux-http", "vyos-http")
MANAGERS = ("apk", "apt", "dnf", "egoportage", "opkg", "pacman", "portage", "yum", "equo", "xbps", "zypper",
            "luet")
GENERATORS = ("dump", "copy", "template", "hostname", "hosts", "remove", "cloud-init", "lxd-agent", "fstab")
ARCH_MAPS = ("almalinux", "alpinelinux", "altlinux", "archlinux", "centos", "debian", "gentoo", "plamolinux",
             "voidlinux", "funtoo")
TRIGGERS = ("post-unpack", "post-update", "post-packages", "post-files")
SET_ACTIONS = ("install", "remove")
FILTER_TYPES = ("container", "vm")
LXC_CONFIG_TYPES = ("all", "user", "system")
TEMPLATE_WHEN = ("create", "copy", "start")
CLOUD_INIT_NAMES = ("user-data", "meta-data", "vendor-data", "network-config")

FILTER = {
    "releases": ("list", "str"),
    "architectures": ("list", "str"),
    "variants": ("list", "str"),
    "types": ("list", ("enum", FILTER_TYPES)),
}

CUSTOM_CMD = {"cmd": "str", "flags": ("list", "str")}

SCHEMA = {
    "image": {
        "description": "str", "distribution": "str", "release": "str", "architecture": "str",
        "expiry": "str", "variant": "str", "name": "str", "serial": "str",
    },
    "source": {
        "downloader": ("enum", DOWNLOADERS), "url": "str", "keys": ("list", "str"), "keyserver": "str",
        "variant": "str", "suite": "str", "same_as": "str", "skip_verification": "bool",
        "components": ("list", "str"),
    },
    "targets": {
        "lxc": {
            "create_message": "str",
            "config": ("list", {**FILTER, "type": ("enum", LXC_CONFIG_TYPES), "before": "uint", "after": "uint",
                                "content": "str"}),
        },
        "lxd": {"vm": {"size": "uint", "filesystem": ("enum", ("ext4", "btrfs", "xfs", "vfat"))}},
    },
    "files": ("list", {
        **FILTER, "generator": ("enum", GENERATORS), "path": "str", "content": "str", "name": "str",
        "template": {"properties": ("map", "str"), "when": ("list", ("enum", TEMPLATE_WHEN))},
        "templated": "bool", "mode": "str", "gid": "str", "uid": "str", "pongo": "bool", "source": "str",
    }),
    "packages": {
        "manager": ("enum", MANAGERS),
        "custom_manager": {"clean": CUSTOM_CMD, "install": CUSTOM_CMD, "remove": CUSTOM_CMD, "refresh": CUSTOM_CMD,
                           "update": CUSTOM_CMD, "flags": ("list", "str")},
        "update": "bool", "cleanup": "bool",
        "sets": ("list", {**FILTER, "packages": ("list", "str"), "action": ("enum", SET_ACTIONS), "early": "bool",
                          "flags": ("list", "str")}),
        "repositories": ("list", {**FILTER, "name": "str", "url": "str", "type": "str", "key": "str"}),
    },
    "actions": ("list", {**FILTER, "trigger": ("enum", TRIGGERS), "action": "str", "pongo": "bool"}),
    "mappings": {"architectures": ("map", "str"), "architecture_map": ("enum", ARCH_MAPS)},
    "environment": {"clear_defaults": "bool", "variables": ("list", {"key": "str", "value": "str"})},
}


class DefinitionError(ValueError):
    """The definition is not valid; the message starts with the offending key's path."""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def check(value, kind, path: str):
    """Check `value` against `kind`; return it normalised (YAML scalars as distrobuilder reads them:
    numbers given where a string is expected become strings)."""
    if isinstance(kind, dict):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise DefinitionError(f"{path}: expected a mapping, got {_show(value)}")
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or key not in kind:
                raise DefinitionError(f"{_join(path, str(key))}: unknown key")
            out[key] = check(item, kind[key], _join(path, key))
        return out
    if isinstance(kind, tuple) and kind[0] == "list":
        if value is None:
            return []
        if not isinstance(value, list):
            raise DefinitionError(f"{path}: expected a list, got {_show(value)}")
        return [check(item, kind[1], f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(kind, tuple) and kind[0] == "map":
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise DefinitionError(f"{path}: expected a mapping, got {_show(value)}")
        return {str(k): check(v, kind[1], f"{path}.{k}") for k, v in value.items()}
    if isinstance(kind, tuple) and kind[0] == "enum":
        if not isinstance(value, str) or value.strip() not in kind[1]:
            raise DefinitionError(f"{path}: invalid value {_show(value)} (one of: {', '.join(kind[1])})")
        return value.strip()
    if kind == "bool":
        if not isinstance(value, bool):
            raise DefinitionError(f"{path}: invalid value {_show(value)} (expected true or false)")
        return value
    if kind == "uint":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DefinitionError(f"{path}: invalid value {_show(value)} (expected an unsigned integer)")
        return value
    if kind == "str":
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise DefinitionError(f"{path}: expected a string, got {_show(value)}")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    raise AssertionError(f"bad schema type {kind!r} at {path}")


def lookup(path: str):
    """The schema type of a dotted key (`image.release`, `packages.sets.0.action`, `files.1.content`)
    for `-o` overrides; DefinitionError when the key does not exist."""
    kind = SCHEMA
    for part in path.split("."):
        if isinstance(kind, tuple) and kind[0] == "list":
            if not part.isdigit():
                raise DefinitionError(f"{path}: {part!r} is not a list index")
            kind = kind[1]
        elif isinstance(kind, tuple) and kind[0] == "map":
            kind = kind[1]
        elif isinstance(kind, dict) and part in kind:
            kind = kind[part]
        else:
            raise DefinitionError(f"{path}: unknown key")
    return kind
