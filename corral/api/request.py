"""Request parsing shared by every handler: JSON bodies, project, recursion, ETags, requestor."""
from __future__ import annotations

import json
import re
import socket
import struct
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from corral.api.response import etag_of
from corral.errors import BadRequest, NotFound, PreconditionFailed

MAX_JSON_BODY = 10 * 1024 * 1024
MAX_JSON_DEPTH = 64
# JSON numbers as Go's decoder takes them into LXD's structs: 64-bit integers, finite floats.
INT_MIN, INT_MAX = -2**63, 2**64 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


JSON_BODY = "corral.json_body"     # the request's JSON body once read
STREAMED = "corral.body_streamed"  # the body was streamed through (an upload): it can't be read again


def daemon(request: web.Request):
    return request.app["daemon"]


async def read_json(request: web.Request, *, required: bool = True) -> Any:
    """The JSON body, or a clear 400. Limits size and nesting depth."""
    if (request.content_length or 0) > MAX_JSON_BODY:
        raise BadRequest(f"Request body too large (limit {MAX_JSON_BODY} bytes)")
    raw = request.get(JSON_BODY)
    if raw is None:
        # read(n) returns what has arrived so far (one TLS record, say): read until EOF or the limit.
        buf = bytearray()
        while len(buf) <= MAX_JSON_BODY:
            chunk = await request.content.read(MAX_JSON_BODY + 1 - len(buf))
            if not chunk:
                break
            buf += chunk
        if len(buf) > MAX_JSON_BODY:
            raise BadRequest(f"Request body too large (limit {MAX_JSON_BODY} bytes)")
        raw = request[JSON_BODY] = bytes(buf)   # kept: a handler run again reads it again
    if not raw.strip():
        if required:
            raise BadRequest("Request body is empty: expected JSON")
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(f"Invalid JSON: body is not valid UTF-8 at byte {e.start}") from None
    _check_depth(text)
    try:
        body = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except json.JSONDecodeError as e:
        raise BadRequest(f"Invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    _check_strings(body)
    return body


def _parse_int(text: str) -> int:
    # Checked on the digits: int() refuses more than 4300 of them with a ValueError (a 500).
    if len(text.lstrip("-")) > 20 or not INT_MIN <= int(text) <= INT_MAX:
        raise BadRequest(f"Invalid JSON: number {text[:24]}{'...' if len(text) > 24 else ''} "
                         "is out of range (64-bit integers)")
    return int(text)


def _parse_float(text: str) -> float:
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise BadRequest(f"Invalid JSON: number {text[:24]}{'...' if len(text) > 24 else ''} is out of range")
    return v


def _parse_constant(name: str):
    raise BadRequest(f"Invalid JSON: {name} is not a JSON value")


def has_surrogate(text: str) -> bool:
    """A lone UTF-16 surrogate ("\\udfff" in JSON, or an undecodable byte under surrogateescape):
    no UTF-8 text has one, and storing one breaks every later JSON encoding of the object."""
    return _SURROGATE.search(text) is not None


def _check_strings(value) -> None:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if has_surrogate(v):
                raise BadRequest("Invalid JSON: string with a lone surrogate (\\ud800-\\udfff) is not valid Unicode")
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def check_request_text(request: web.Request) -> None:
    """The URL (path and query, percent-decoded) must be UTF-8 and header values free of
    undecodable bytes: names and parameters reach the database and generated files."""
    try:
        unquote_to_bytes(request.raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Invalid URL: percent-encoded bytes are not valid UTF-8") from None
    for name, value in request.headers.items():
        if has_surrogate(name) or has_surrogate(value):
            raise BadRequest(f"Invalid header {name.encode('ascii', 'replace').decode()}: not valid UTF-8")


def _check_depth(text: str) -> None:
    depth = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise BadRequest(f"Invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1


# Top-level fields LXD's request structs share, with their JSON types: Go's decoder refuses a value
# of the wrong type (400) where a lenient `body.get(x) or default` would silently take the default.
_COMMON_FIELDS: dict[str, type | tuple] = {
    "name": str, "description": str, "type": str, "architecture": str, "expires_at": str,
    "password": str, "certificate": str, "config": dict, "devices": dict, "properties": dict,
    "source": dict, "profiles": list, "aliases": list, "projects": list, "ephemeral": bool,
    "stateful": bool, "public": bool, "auto_update": bool, "restricted": bool, "token": bool,
}
_JSON_NAMES = {str: "string", dict: "object", list: "array", bool: "boolean"}


async def read_object(request: web.Request) -> dict:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("Invalid JSON: expected an object")
    check_common_fields(body)
    return body


def check_common_fields(body: dict, skip=()) -> None:
    """Stricter than Go's decoder: a field LXD's request structs share, sent with the wrong JSON
    type, is refused even where this endpoint's struct has no such field (`skip`: those it has)."""
    for name, kind in _COMMON_FIELDS.items():
        v = body.get(name)
        if v is not None and name not in skip and not isinstance(v, kind):
            raise BadRequest(f'Invalid value for field "{name}": expected {_JSON_NAMES[kind]}')


_TYPE_NAMES = {str: "string", dict: "object", list: "array", bool: "boolean", int: "integer"}


def field(body: dict, name: str, kind: type, default: Any = None) -> Any:
    """A typed field of a JSON body (missing or null: `default`), or a 400 naming it."""
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
        raise BadRequest(f'Invalid value for field "{name}": expected {_TYPE_NAMES.get(kind, kind.__name__)}')
    return v


def recursion(request: web.Request) -> int:
    raw = request.query.get("recursion", "0")
    try:
        return max(0, int(raw))
    except ValueError:
        return 0


async def project(request: web.Request, kind: str | None = None) -> str:
    """The request's project (?project=), which must exist. With `kind` (images, profiles,
    storage.volumes): the project holding that kind of object for it, the default project when
    the request's project has the feature off (as LXD)."""
    name = request.query.get("project") or "default"
    projects = daemon(request).projects
    if not await projects.exists(name):
        raise NotFound("Project not found")
    return projects.holder(kind, name) if kind else name


def check_etag(request: web.Request, current: Any) -> None:
    """Honour If-Match on PUT/PATCH: 412 when the client's copy is stale."""
    match = request.headers.get("If-Match")
    if not match:
        return
    want = etag_of(current)
    tags = [t.strip().strip('"') for t in match.split(",")]
    if "*" not in tags and want not in tags:
        raise PreconditionFailed("ETag doesn't match")


def requestor(request: web.Request) -> dict:
    """Who asked, as LXD puts it in lifecycle events."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport else None
    if sock is not None and sock.family == socket.AF_UNIX:
        username = ""
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            import pwd
            username = pwd.getpwuid(uid).pw_name
        except (OSError, KeyError):
            pass
        return {"address": "@", "protocol": "unix", "username": username}
    peer = transport.get_extra_info("peername") if transport else None
    return {"address": f"{peer[0]}:{peer[1]}" if peer else "", "protocol": "tls",
            "username": request.get("client_fingerprint", "")}


async def spool_body(request: web.Request, directory: str) -> str:
    """Write a (binary) request body to a new root-only file in `directory`; its path. The caller
    owns the file (removed here when reading the body fails)."""
    import os
    import tempfile
    from corral.backup.format import UPLOAD_PREFIX
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=directory, prefix=UPLOAD_PREFIX)
    request[STREAMED] = True
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                f.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path
