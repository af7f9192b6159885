"""Host-side image store primitives: safe import (unpack + validate) of LXD unified and split
images. Fingerprints and format detection are in formats.py, the entry-by-entry extraction in
extract.py, packing an image directory back into a unified tarball in pack.py (re-exported here).

An unpacked image directory looks like LXD's:

    <dest>/metadata.yaml
    <dest>/templates/...
    <dest>/rootfs/...

Archives are never unpacked with a generic extractor: every entry is checked and created
by this module (numeric owners and modes kept, nothing ever written through a symlink),
into a sibling temporary directory that is renamed into place only once everything has
been validated.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterator

import yaml

from corral.image.extract import Unpacker
from corral.image.formats import detect_format, fingerprint
from corral.image.pack import pack_unified
from corral.image.unpack import CHUNK, Budget, ImageError, ImageTooLarge, unsquashfs

__all__ = ["Budget", "ImageError", "ImageTooLarge", "CHUNK", "detect_format", "fingerprint", "pack_unified"]

MAX_METADATA_SIZE = 16 << 20


# LXD (shared/osarch) architecture names and the aliases it accepts for them.
_ARCHITECTURES = {
    "i686": ("i386", "i486", "i586", "386", "x86", "generic_32"),
    "x86_64": ("amd64", "generic_64"),
    "armv6l": ("armel", "arm"),
    "armv7l": ("armhf", "armhfp", "armv7a", "armv7hl", "armv7hnl", "armv7nhl", "armv7hnl"),
    "armv8l": (),
    "aarch64": ("arm64", "arm64v8", "armv8"),
    "ppc": ("powerpc",),
    "ppc64": ("powerpc64", "ppc64be"),
    "ppc64le": ("ppc64el",),
    "s390x": (),
    "mips": ("mipsel", "mipsle"),
    "mips64": ("mips64el", "mips64le"),
    "riscv32": (),
    "riscv64": (),
    "loongarch64": (),
}
_ARCH_BY_ALIAS = {a: name for name, aliases in _ARCHITECTURES.items() for a in (name, *aliases)}


@dataclass
class ImageInfo:
    fingerprint: str
    size: int
    architecture: str
    created_at: str
    properties: dict[str, str] = field(default_factory=dict)
    templates: dict[str, dict] = field(default_factory=dict)
    filename: str = ""
    type: str = "container"
    expires_at: str = "1970-01-01T00:00:00Z"


# --------------------------------------------------------------------------- fingerprint


# --------------------------------------------------------------------------- metadata

def normalize_architecture(name: object) -> str:
    arch = _ARCH_BY_ALIAS.get(name) if isinstance(name, str) else None
    if arch is None:
        raise ImageError(f"Invalid metadata.yaml: unknown architecture {name!r}")
    return arch


def rfc3339(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def parse_metadata(yaml_text: str | bytes, *, strict: bool = True) -> dict:
    """Parse and check an image's metadata.yaml.

    Returns {"architecture", "creation_date", "expiry_date", "properties", "templates"}
    with the architecture normalised to LXD's name, property values as the literal YAML
    text (like LXD's map[string]string), and templates as
    {path: {"when": [...], "create_only": bool, "template": str, "properties": {...}}}.
    With strict=False (used when applying templates) only the templates are checked.
    """
    try:
        typed = yaml.safe_load(yaml_text)
        literal = yaml.load(yaml_text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ImageError(f"Invalid metadata.yaml: {getattr(e, 'problem', None) or e}{where}") from None
    if typed is None and not strict:
        typed = literal = {}
    if not isinstance(typed, dict) or not isinstance(literal, dict):
        raise ImageError("Invalid metadata.yaml: expected a mapping")

    meta = {
        "properties": _string_map(typed.get("properties"), literal.get("properties"), "properties"),
        "templates": _parse_templates(typed.get("templates"), literal.get("templates")),
    }
    if not strict:
        return meta
    if "architecture" not in typed:
        raise ImageError("Invalid metadata.yaml: missing architecture")
    meta["architecture"] = normalize_architecture(typed["architecture"])
    if "creation_date" not in typed:
        raise ImageError("Invalid metadata.yaml: missing creation_date")
    meta["creation_date"] = _timestamp(typed["creation_date"], "creation_date")
    meta["expiry_date"] = _timestamp(typed.get("expiry_date") or 0, "expiry_date")
    return meta


def _timestamp(value: object, key: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ImageError(f"Invalid metadata.yaml: {key} must be a unix timestamp, got {value!r}")
    try:
        rfc3339(value)
    except (OverflowError, OSError, ValueError):
        raise ImageError(f"Invalid metadata.yaml: {key} is out of range") from None
    return value


def _string_map(typed: object, literal: object, what: str) -> dict[str, str]:
    if typed is None:
        return {}
    if not isinstance(typed, dict) or not isinstance(literal, dict):
        raise ImageError(f"Invalid metadata.yaml: {what} must be a mapping")
    out = {}
    for key, value in typed.items():
        if isinstance(value, (dict, list)):
            raise ImageError(f"Invalid metadata.yaml: {what}.{key} must be a string")
        if value is None:
            out[str(key)] = ""
        elif isinstance(value, str):
            out[str(key)] = value
        else:  # keep the YAML text, as LXD does when decoding into map[string]string
            out[str(key)] = literal.get(str(key), str(value))
    return out


def _parse_templates(typed: object, literal: object) -> dict[str, dict]:
    if typed is None:
        return {}
    if not isinstance(typed, dict) or not isinstance(literal, dict):
        raise ImageError("Invalid metadata.yaml: templates must be a mapping")
    out = {}
    for path, tpl in typed.items():
        if not isinstance(path, str) or not path.strip("/"):
            raise ImageError(f"Invalid metadata.yaml: bad template path {path!r}")
        if not isinstance(tpl, dict):
            raise ImageError(f"Invalid metadata.yaml: template {path} must be a mapping")
        name = tpl.get("template")
        if not isinstance(name, str) or not name or name.startswith("/") or ".." in name.split("/"):
            raise ImageError(f"Invalid metadata.yaml: template {path} has a bad template file {name!r}")
        when = tpl.get("when") or []
        if not isinstance(when, list) or not all(isinstance(w, str) for w in when):
            raise ImageError(f"Invalid metadata.yaml: template {path}: when must be a list of strings")
        create_only = tpl.get("create_only", False)
        if not isinstance(create_only, bool):
            raise ImageError(f"Invalid metadata.yaml: template {path}: create_only must be a boolean")
        lit = literal.get(path) if isinstance(literal.get(path), dict) else {}
        out[path] = {
            "when": list(when),
            "create_only": create_only,
            "template": name,
            "properties": _string_map(tpl.get("properties"), lit.get("properties") or {},
                                      f"templates.{path}.properties"),
        }
    return out


# --------------------------------------------------------------------------- import

def import_unified(tarball_path: str, dest_dir: str, *, filename: str = "",
                   allow_devices: bool = False, budget: Budget | None = None) -> ImageInfo:
    """Unpack a unified image tarball (metadata.yaml, templates/, rootfs/) into dest_dir,
    refusing it (ImageTooLarge, nothing left) as soon as it passes `budget`."""
    fp = fingerprint([tarball_path])
    with _staging(dest_dir) as tmp:
        unpacker = Unpacker(tmp, allow_devices, budget)
        unpacker.extract_tar(tarball_path, prefix=())
        unpacker.finish()
        meta = _validate_tree(tmp)
    return _info(meta, fp, [tarball_path], filename)


def import_split(meta_path: str, rootfs_path: str, dest_dir: str, *, filename: str = "",
                 allow_devices: bool = False, budget: Budget | None = None) -> ImageInfo:
    """Unpack a split image (metadata tarball + rootfs tarball or squashfs) into dest_dir; the
    two parts together must fit `budget` (a squashfs is measured before it is unpacked)."""
    fp = fingerprint([meta_path, rootfs_path])
    with _staging(dest_dir) as tmp:
        unpacker = Unpacker(tmp, allow_devices, budget)
        unpacker.extract_tar(meta_path, prefix=(), metadata_only=True)
        if detect_format(rootfs_path) == "squashfs":
            if unpacker.meta_rootfs:
                # unsquashfs would have to write into a tree the metadata tarball made (and through
                # its symlinks): refused rather than merged
                raise ImageError("Invalid image: a metadata tarball with rootfs/ entries is only "
                                 "supported with a tarball rootfs, not a squashfs one")
            unsquashfs(rootfs_path, os.path.join(tmp, "rootfs"), unpacker.budget)
            unpacker.check_tree(os.path.join(tmp, "rootfs"))
        else:
            if not unpacker.meta_rootfs:
                os.mkdir(os.path.join(tmp, "rootfs"), 0o755)
            unpacker.extract_tar(rootfs_path, prefix=("rootfs",))
        unpacker.finish()
        meta = _validate_tree(tmp)
    return _info(meta, fp, [meta_path, rootfs_path], filename)


def _info(meta: dict, fp: str, paths: list[str], filename: str) -> ImageInfo:
    return ImageInfo(
        fingerprint=fp,
        size=sum(os.path.getsize(p) for p in paths),
        architecture=meta["architecture"],
        created_at=rfc3339(meta["creation_date"]),
        expires_at=rfc3339(meta["expiry_date"]),
        properties=meta["properties"],
        templates=meta["templates"],
        filename=filename,
    )


@contextlib.contextmanager
def _staging(dest_dir: str) -> Iterator[str]:
    """Yield a private sibling temp dir; rename it to dest_dir on success, remove it on error."""
    dest_dir = os.path.abspath(dest_dir)
    if os.path.lexists(dest_dir):
        if os.path.islink(dest_dir) or not os.path.isdir(dest_dir) or os.listdir(dest_dir):
            raise ImageError(f"Image directory {os.path.basename(dest_dir)} already exists")
    parent = os.path.dirname(dest_dir)
    os.makedirs(parent, exist_ok=True)
    # 0700: the unpacked rootfs may contain setuid binaries that host users must not reach.
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest_dir)}.tmp-", dir=parent)
    try:
        yield tmp
        try:
            os.rename(tmp, dest_dir)
        except OSError:  # someone else populated dest_dir meanwhile
            raise ImageError(f"Image directory {os.path.basename(dest_dir)} already exists") from None
    except BaseException:
        _rmtree(tmp)
        raise


def _rmtree(path: str) -> None:
    def force(func, p, exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
    shutil.rmtree(path, onexc=force)


def _validate_tree(root: str) -> dict:
    meta_file = os.path.join(root, "metadata.yaml")
    try:
        st = os.lstat(meta_file)
    except FileNotFoundError:
        raise ImageError("Invalid image: missing metadata.yaml") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("Invalid image: metadata.yaml is not a regular file")
    if st.st_size > MAX_METADATA_SIZE:
        raise ImageError("Invalid image: metadata.yaml is too large")
    with open(meta_file, "rb") as f:
        meta = parse_metadata(f.read())
    for name in ("rootfs", "templates"):
        path = os.path.join(root, name)
        if not os.path.lexists(path):
            if name == "rootfs":
                raise ImageError("Invalid image: missing rootfs/ directory")
        elif os.path.islink(path) or not os.path.isdir(path):
            raise ImageError(f"Invalid image: {name} is not a directory")
    return meta
