"""The agent client's errors: the guest's errno, mapped to the HTTP statuses LXD answers."""
from __future__ import annotations

import errno as E
import os

from corral.errors import CorralError
from corral.instance.fileroot import FileError, oserror

OFFLINE = "LXD VM agent isn't currently running"    # LXD's errQemuAgentOffline


def status_of(code: int | None) -> int:
    if code in (E.ENOENT, E.ENOTDIR):
        return 404
    if code in (E.EACCES, E.EPERM):
        return 403
    if code in (E.EEXIST, E.EISDIR, E.ENOTEMPTY, E.ELOOP, E.EINVAL, E.ENAMETOOLONG, E.EXDEV, E.EBUSY,
                E.EROFS, E.EMLINK, E.E2BIG):
        return 400
    return 500


class AgentError(CorralError):
    """A failure in the guest (.errno: its errno, when it has one) or of the link to the agent."""
    status = 500

    def __init__(self, message: str, errno_: int | None = None, status: int | None = None,
                 path: str | None = None):
        super().__init__(message, status if status is not None else status_of(errno_) if errno_ else None)
        self.errno = errno_
        self.path = path


class AgentNotRunning(AgentError):
    """No agent answers: the VM has none, it has not started yet, or the channel is not there."""

    def __init__(self, message: str = OFFLINE, detail: str = ""):
        super().__init__(message, status=500)
        self.detail = detail


class AgentFileError(AgentError, FileError):
    """A file operation failed in the guest: a FileError too, with files.py's texts and statuses
    (404 "not found", 403 "forbidden", ...)."""


def file_error(code: int, message: str, path: str, what: str) -> AgentFileError:
    """The error files.py would raise for errno `code` on `path`; the guest's own text when it
    says more than strerror()."""
    mapped = oserror(OSError(code, os.strerror(code)), path, what)
    if code not in (E.ENOENT, E.ENOTDIR, E.EACCES, E.EPERM) and message and \
            not message.endswith(os.strerror(code)):
        text = message
    else:
        text = mapped.message
    return AgentFileError(text, code, mapped.status, path)
