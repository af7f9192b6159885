"""Small pieces of the image store: API URLs, request field checks and file helpers (a part of
corral/image/images.py, which re-exports them)."""
from __future__ import annotations

import contextlib
import os
from typing import Any

from corral import timeutil
from corral.config.keys import check_key_name
from corral.errors import BadRequest
from corral.image import store
from corral.names import check_entity_name

COMPRESSIONS = ("gzip", "xz", "zstd", "none")


def url(fingerprint: str, project: str = "default") -> str:
    return f"/1.0/images/{fingerprint}" + ("" if project == "default" else f"?project={project}")


def alias_url(name: str, project: str = "default") -> str:
    return f"/1.0/images/aliases/{name}" + ("" if project == "default" else f"?project={project}")


def rmtree(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    elif os.path.isdir(path):
        store._rmtree(path)


def unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def is_qcow2(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"QFI\xfb"


def file_extension(path: str) -> str:
    """LXD's DetectCompression extensions (used for export file names)."""
    fmt = store.detect_format(path)
    if fmt == "tar" and is_qcow2(path):   # a virtual-machine image's disk
        return ".qcow2"
    if fmt == "tar":
        with open(path, "rb") as f:
            f.seek(257)
            return ".tar" if f.read(5) == b"ustar" else ""
    return {"gzip": ".tar.gz", "xz": ".tar.xz", "bzip2": ".tar.bz2", "zstd": ".tar.zst",
            "squashfs": ".squashfs"}[fmt]


def check_expiry(value: Any) -> str | None:
    """An RFC 3339 expiry (None or the zero time: not set)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest('Invalid value for field "expires_at": expected an RFC 3339 timestamp')
    try:
        dt = timeutil.parse(value)
    except ValueError:
        raise BadRequest(f'Invalid value for field "expires_at": {value!r} is not an RFC 3339 timestamp') from None
    if dt.year <= 1:
        return None
    return value


def check_properties(value: Any, what: str = "properties") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or any(not isinstance(k, str) or not isinstance(v, str)
                                          for k, v in value.items()):
        raise BadRequest(f'Invalid value for field "{what}": expected a map of strings')
    for k in value:   # properties become instance config keys (image.KEY): the same names
        check_key_name(k, "image property")
    return dict(value)


def check_alias_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name and target are required")
    return check_entity_name("alias", name)


def check_aliases(value: Any) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest('Invalid value for field "aliases": expected an array')
    out, seen = [], set()
    for a in value:
        if not isinstance(a, dict):
            raise BadRequest('Invalid value for field "aliases": expected objects with a name')
        name = check_alias_name(a.get("name"))
        desc = a.get("description") or ""
        if not isinstance(desc, str):
            raise BadRequest('Invalid value for field "aliases": description must be a string')
        if name in seen:
            raise BadRequest(f"Alias already exists: {name}")
        seen.add(name)
        out.append({"name": name, "description": desc})
    return out
