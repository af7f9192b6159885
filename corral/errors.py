"""Errors that carry an HTTP status, raised by domain code and turned into LXD envelopes by api/."""
from __future__ import annotations

import os
import re

# Host directories no client needs to see (the daemon's state directory: image staging, storage
# pools, backups, containers): error texts name what went wrong, not where on the host.
_HOST_PATHS: list[str] = []
_PATH_TAIL = r"(/[^\s'\"(),;]*)?"


def hide_host_paths(*prefixes: str) -> None:
    for p in prefixes:
        p = os.path.abspath(p).rstrip("/")
        if p and p != "/" and p not in _HOST_PATHS:
            _HOST_PATHS.append(p)
    _HOST_PATHS.sort(key=len, reverse=True)


def _short(m: re.Match) -> str:
    tail = (m.group(1) or "").rstrip("/")
    return os.path.basename(tail) if tail else "the daemon's directory"


def public_message(text: str) -> str:
    """An error text for a client: host paths under the daemon's directories become their last
    component ("/var/lib/corral/storage-pools/default/custom/v1" -> "v1")."""
    for p in _HOST_PATHS:
        if p in text:
            text = re.sub(re.escape(p) + _PATH_TAIL + r"(?![^\s'\"(),;/])", _short, text)
    return text


class CorralError(Exception):
    status = 500

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(CorralError):
    status = 400


class Forbidden(CorralError):
    status = 403


class NotFound(CorralError):
    status = 404


class Conflict(CorralError):
    status = 409


class PreconditionFailed(CorralError):
    status = 412


class NotImplementedFeature(CorralError):
    """A feature Corral does not implement yet: a clear error, never a fake success."""
    status = 501

    def __init__(self, feature: str):
        super().__init__(f"not implemented: {feature}")
