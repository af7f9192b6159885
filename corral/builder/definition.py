"""Loading a distrobuilder definition: YAML -> checked dict (schema.py), `-o key=value` overrides,
distrobuilder's defaults (SetDefaults), its semantic checks (Validate), the architecture mappings and
the filters (releases / architectures / variants / types) that files, package sets, repositories,
actions and LXC config entries carry.

The result is a plain dict of the same shape as the YAML with every section present, plus
`image.architecture_mapped` (the distribution's architecture name), `image.architecture_kernel` (LXD's
name) and `targets.type` ("container" or "vm")."""
from __future__ import annotations

import copy
import os
import time

import yaml

from corral.builder import render
from corral.config.values import parse_bool
from corral.builder.schema import CLOUD_INIT_NAMES, SCHEMA, DefinitionError, check, lookup

__all__ = ["DefinitionError", "load", "load_file", "applies", "filtered", "architecture_kernel"]

# distrobuilder's shared/osarch.go tables (host architecture name -> the distribution's name).
ARCH_MAPS = {
    "debian": {"aarch64": "arm64", "armv6l": "armel", "armv7l": "armhf", "i686": "i386", "x86_64": "amd64",
               "ppc": "powerpc", "ppc64": "ppc64", "ppc64le": "ppc64el", "riscv64": "riscv64", "s390x": "s390x",
               "mips64": "mips64el", "loongarch64": "loong64"},
    "almalinux": {"aarch64": "aarch64", "x86_64": "x86_64", "ppc64le": "ppc64le", "s390x": "s390x"},
    "centos": {"aarch64": "aarch64", "armv7l": "armhfp", "i686": "i386", "x86_64": "x86_64", "ppc64le": "ppc64le",
               "s390x": "s390x"},
    "alpinelinux": {"aarch64": "aarch64", "armv6l": "armhf", "armv7l": "armv7", "i686": "x86", "x86_64": "x86_64",
                    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"},
    "archlinux": {"aarch64": "aarch64", "armv7l": "armv7", "x86_64": "x86_64", "riscv64": "riscv64"},
    "altlinux": {"aarch64": "aarch64", "i686": "i586", "x86_64": "x86_64", "ppc64le": "ppc64le"},
    "gentoo": {"aarch64": "arm64", "armv7l": "armv7a_hardfp", "i686": "i686", "x86_64": "amd64",
               "ppc64le": "ppc64le", "s390x": "s390x"},
    "plamolinux": {"i686": "x86", "x86_64": "x86_64"},
    "voidlinux": {"aarch64": "aarch64", "armv7l": "armv7l", "i686": "i686", "x86_64": "x86_64"},
    "funtoo": {"aarch64": "arm64", "i686": "i686", "x86_64": "x86-64bit"},
}

# LXD's osarch names and their aliases (shared/osarch/architectures.go) -> LXD's name.
KERNEL_ARCHES = {
    "i686": ("i386", "i586", "386", "x86", "generic_32"), "x86_64": ("amd64", "generic_64"),
    "armv6l": ("armel", "arm"), "armv7l": ("armhf", "armhfp", "armv7a", "armv7hl", "armv7", "armv7a_hardfp", "armv7nhl"),
    "aarch64": ("arm64", "arm64_generic"), "ppc": ("powerpc",), "ppc64": ("powerpc64", "ppc64"),
    "ppc64le": ("ppc64el",), "s390x": (), "mips": ("mipsel", "mipsle"), "mips64": ("mips64el", "mips64le"),
    "riscv32": (), "riscv64": (), "loongarch64": ("loong64",),
}

DEFAULT_NAME = ("{{ image.distribution }}-{{ image.release }}-{{ image.architecture_mapped }}-"
                "{{ image.variant }}-{{ image.serial }}")
DEFAULT_DESCRIPTION = ("{{ image.distribution|capfirst }} {{ image.release }} {{ image.architecture_mapped }}"
                       '{% if image.variant != "default" %} ({{ image.variant }}){% endif %} ({{ image.serial }})')


def architecture_kernel(arch: str) -> str:
    for name, aliases in KERNEL_ARCHES.items():
        if arch == name or arch in aliases:
            return name
    raise DefinitionError(f'image.architecture: unknown architecture "{arch}"')


def _parse_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise DefinitionError(f'-o {text}: expected key=value')
    return key.strip(), value


def _set(doc: dict, key: str, value: str) -> None:
    """distrobuilder's Definition.SetValue: a scalar at a dotted path (list items by index)."""
    kind = lookup(key)
    if kind == "bool":
        try:
            parsed = parse_bool(value.strip())
        except ValueError:
            raise DefinitionError(f'{key}: invalid value "{value}" (expected true or false)') from None
    elif kind == "uint":
        if not value.strip().isdigit():
            raise DefinitionError(f'{key}: invalid value "{value}" (expected an unsigned integer)')
        parsed = int(value)
    elif kind == "str" or (isinstance(kind, tuple) and kind[0] == "enum"):
        parsed = value
    else:
        raise DefinitionError(f"{key}: cannot be set with -o (not a scalar)")
    parts = key.split(".")
    node = doc
    for i, part in enumerate(parts[:-1]):
        nxt = node[int(part)] if isinstance(node, list) else node.get(part)
        if nxt is None:
            if isinstance(node, list):
                raise DefinitionError(f"{key}: index out of range")
            nxt = [] if parts[i + 1].isdigit() else {}
            node[part] = nxt
        if isinstance(nxt, list) and parts[i + 1].isdigit() and int(parts[i + 1]) >= len(nxt):
            raise DefinitionError(f"{key}: index out of range")
        node = nxt
    if isinstance(node, list):
        node[int(parts[-1])] = parsed
    else:
        node[parts[-1]] = parsed


def _mapped_architecture(d: dict) -> str:
    arch = d["image"]["architecture"]
    amap = d["mappings"].get("architecture_map", "")
    if amap:
        table = ARCH_MAPS.get(amap, {})
        kernel = architecture_kernel(arch)
        if kernel not in table:
            raise DefinitionError(f'mappings.architecture_map: architecture "{arch}" has no name in map "{amap}"')
        arch = table[kernel]
    return d["mappings"].get("architectures", {}).get(arch, arch)


def _validate(d: dict, base_dir: str) -> None:
    """distrobuilder's Validate, with the key paths."""
    if not d["image"].get("distribution", "").strip():
        raise DefinitionError("image.distribution: may not be empty")
    if not d["source"].get("downloader"):
        raise DefinitionError("source.downloader: may not be empty")
    pk = d["packages"]
    if pk.get("manager") and pk.get("custom_manager"):
        raise DefinitionError("packages.custom_manager: cannot have both packages.manager and packages.custom_manager set")
    if pk.get("custom_manager"):
        for cmd in ("clean", "install", "remove", "refresh", "update"):
            if not pk["custom_manager"].get(cmd, {}).get("cmd"):
                raise DefinitionError(f"packages.custom_manager.{cmd}.cmd: may not be empty")
    elif (pk.get("sets") or pk.get("update") or pk.get("cleanup") or pk.get("repositories")) and not pk.get("manager"):
        raise DefinitionError("packages.manager: packages.manager or packages.custom_manager needs to be set")
    for i, s in enumerate(pk.get("sets", [])):
        if "action" not in s:
            raise DefinitionError(f"packages.sets[{i}].action: may not be empty (one of: install, remove)")
    for i, r in enumerate(pk.get("repositories", [])):
        if not r.get("name"):
            raise DefinitionError(f"packages.repositories[{i}].name: may not be empty")
    for i, a in enumerate(d["actions"]):
        if "trigger" not in a:
            raise DefinitionError(f"actions[{i}].trigger: may not be empty")
    for i, f in enumerate(d["files"]):
        where = f"files[{i}]"
        gen = f.get("generator")
        if not gen:
            raise DefinitionError(f"{where}.generator: may not be empty")
        if gen in ("dump", "template", "hostname", "hosts", "remove") and not f.get("path"):
            raise DefinitionError(f"{where}.path: may not be empty for the {gen} generator")
        if gen == "template" and not f.get("name"):
            raise DefinitionError(f"{where}.name: may not be empty for the template generator")
        if gen == "copy" and not f.get("source"):
            raise DefinitionError(f"{where}.source: may not be empty for the copy generator")
        if gen == "cloud-init" and f.get("name") not in CLOUD_INIT_NAMES:
            raise DefinitionError(f'{where}.name: invalid value "{f.get("name", "")}" '
                                  f'(one of: {", ".join(CLOUD_INIT_NAMES)})')
        mode = f.get("mode", "")
        if mode and not all(c in "01234567" for c in mode):
            raise DefinitionError(f'{where}.mode: invalid value "{mode}" (an octal mode)')
        for key in ("uid", "gid"):
            if f.get(key) and not f[key].isdigit():
                raise DefinitionError(f'{where}.{key}: invalid value "{f[key]}" (a number)')
        if f.get("path") and not f["path"].startswith("/"):
            raise DefinitionError(f'{where}.path: invalid value "{f["path"]}" (an absolute path)')
    expiry = d["image"].get("expiry", "")
    if expiry and not _expiry_seconds(expiry):
        raise DefinitionError(f'image.expiry: invalid value "{expiry}" (like 30d, 12h, 1w)')
    d["image"]["architecture_kernel"] = architecture_kernel(d["image"]["architecture"])
    d["image"]["architecture_mapped"] = _mapped_architecture(d)
    d["_base_dir"] = base_dir


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}


def _expiry_seconds(text: str) -> int:
    """distrobuilder's GetExpiryDate units: s, m, h, d, w, M, y (several may follow each other)."""
    total, num = 0, ""
    for c in text.strip():
        if c.isdigit():
            num += c
        elif c in _UNITS and num:
            total += int(num) * _UNITS[c]
            num = ""
        else:
            return 0
    return total if not num else 0


def expiry_seconds(d: dict) -> int:
    return _expiry_seconds(d["image"]["expiry"])


def load(text: str, overrides: list[str] | tuple[str, ...] = (), *, base_dir: str = ".", vm: bool = False,
         now: float | None = None) -> dict:
    """Parse, check, override, default and validate a definition; DefinitionError names the key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DefinitionError(f"invalid YAML: {e}") from None
    if raw is None:
        raw = {}
    doc = check(raw, SCHEMA, "")
    for item in overrides:
        key, value = _parse_override(item)
        _set(doc, key, value)
    doc = check(doc, SCHEMA, "")      # the overridden document, checked again (enums, types)
    for section, kind in SCHEMA.items():
        doc.setdefault(section, [] if isinstance(kind, tuple) else {})
    for section in ("lxc", "lxd"):
        doc["targets"].setdefault(section, {})
    doc["targets"]["lxd"].setdefault("vm", {})
    img = doc["image"]
    img.setdefault("architecture", os.uname().machine)
    img.setdefault("expiry", "30d")
    img.setdefault("serial", time.strftime("%Y%m%d_%H%M", time.gmtime(now)))
    img.setdefault("variant", "default")
    img.setdefault("release", "")
    doc["source"].setdefault("keyserver", "hkps.pool.sks-keyservers.net")
    doc["targets"]["type"] = "vm" if vm else "container"
    for key in ("name", "description"):
        if not img.get(key):
            img[key] = DEFAULT_NAME if key == "name" else DEFAULT_DESCRIPTION
    _validate(doc, base_dir)
    doc["_templates"] = {key: img[key] for key in ("name", "description")}
    rerender(doc)
    return doc


def rerender(d: dict) -> None:
    """Render image.name and image.description from their templates (again: a source may have filled
    in image.release, as the busybox source does with the host's busybox version)."""
    for key, tpl in d["_templates"].items():
        d["image"][key] = render.render_string(tpl, d, f"image.{key}")


def load_file(path: str, overrides=(), **kw) -> dict:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise DefinitionError(f"cannot read the definition {path}: {e.strerror}") from None
    return load(text, overrides, base_dir=os.path.dirname(os.path.abspath(path)), **kw)


def applies(item: dict, d: dict) -> bool:
    """distrobuilder's ApplyFilter: every filter list given must hold the image's value."""
    img = d["image"]
    if item.get("releases") and img["release"] not in item["releases"]:
        return False
    if item.get("architectures") and not ({img["architecture_mapped"], img["architecture"]} & set(item["architectures"])):
        return False
    if item.get("variants") and img["variant"] not in item["variants"]:
        return False
    if item.get("types") and d["targets"]["type"] not in item["types"]:
        return False
    return True


def filtered(items: list[dict], d: dict) -> list[dict]:
    return [item for item in items if applies(item, d)]


def public_view(d: dict) -> dict:
    """The definition as templates see it (no private keys)."""
    return {k: copy.deepcopy(v) for k, v in d.items() if not k.startswith("_")}
