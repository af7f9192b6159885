"""LXD's response envelopes (sync / async / error), built in one place."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from corral.errors import public_message

_JSON_HEADERS = {"Content-Type": "application/json"}


def dumps(obj: Any) -> str:
    # Go's encoding/json output: compact, non-ASCII kept, no sorting.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def etag_of(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def sync(metadata: Any = None, *, status: int = 200, etag: Any = None, location: str | None = None) -> web.Response:
    body = {"type": "sync", "status": "Success", "status_code": 200, "operation": "",
            "error_code": 0, "error": "", "metadata": metadata}
    headers = dict(_JSON_HEADERS)
    if etag is not None:
        headers["ETag"] = f'"{etag_of(etag)}"'
    if location:
        headers["Location"] = location
    return web.Response(status=status, body=(dumps(body) + "\n").encode(), headers=headers)


def empty() -> web.Response:
    """LXD's EmptySyncResponse (metadata is an empty map)."""
    return sync({})


def created(location: str, metadata: Any = None) -> web.Response:
    """LXD's SyncResponseLocation: 201 Created with a Location header."""
    return sync(metadata, status=201, location=location)


def operation(request: web.Request, work) -> web.Response:
    """Start `work` (a corral.operations.Work from the domain layer) as an operation of the daemon
    serving `request`; LXD's 202 async envelope naming it. The one place the API makes operations."""
    return async_(request.app["daemon"].operations.start(work))


def async_(op) -> web.Response:
    body = {"type": "async", "status": "Operation created", "status_code": 100, "operation": op.url,
            "error_code": 0, "error": "", "metadata": op.to_api()}
    headers = dict(_JSON_HEADERS, Location=op.url)
    return web.Response(status=202, body=(dumps(body) + "\n").encode(), headers=headers)


def error(status: int, message: str) -> web.Response:
    body = {"type": "error", "status": "", "status_code": 0, "operation": "", "error_code": status,
            "error": public_message(message), "metadata": None}
    headers = dict(_JSON_HEADERS)
    headers["X-Content-Type-Options"] = "nosniff"
    return web.Response(status=status, body=(dumps(body) + "\n").encode(), headers=headers)
