"""Errors that carry an HTTP status, raised by domain code and turned into LXD envelopes by api/."""
from __future__ import annotations


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
