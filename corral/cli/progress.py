"""Progress as lxc's ProgressRenderer prints it: one line rewritten with carriage returns (also when
stdout is not a terminal), nothing with --quiet; transfers report "45% (12.00MB/s)"."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, BinaryIO, Iterator

from corral.cli.output import format_bytes, progress_text


class LxcProgress:
    def __init__(self, fmt: str = "%s", quiet: bool = False, stream: Any = None):
        self.fmt = fmt
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.max_length = 0
        self.done_ = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def update(self, status: str) -> None:
        if self.quiet or self.done_:
            return
        msg = "\r" + (self.fmt.replace("%s", status) if "%s" in self.fmt else status)
        if len(msg) == 1 and self.max_length == 0:
            return
        if len(msg) > self.max_length:
            self.max_length = len(msg)
        else:
            self._write("\r" + " " * self.max_length)
        self._write(msg)

    def update_op(self, op: dict) -> None:
        """An operation's progress metadata (`*_progress` text)."""
        text, _ = progress_text(op)
        if text:
            self.update(text)

    def done(self, msg: str = "") -> None:
        if self.quiet or self.done_:
            return
        self.done_ = True
        line = "\r" + msg
        if line == "\r" and self.max_length == 0:
            return
        if msg:
            line += "\n"
        if len(line) > self.max_length:
            self.max_length = len(line)
        else:
            self._write("\r" + " " * self.max_length)
        self._write(line)

    def __enter__(self) -> "LxcProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:
            self.done("")


class Rate:
    """'45% (12.00MB/s)' for a transfer of ``total`` bytes (or '12.00MB (3.00MB/s)' without a total)."""

    def __init__(self, total: int):
        self.total = total
        self.start = time.monotonic()
        self.seen = 0
        self.last = 0.0

    def add(self, n: int) -> str | None:
        self.seen += n
        now = time.monotonic()
        if now - self.last < 0.1 and self.seen < self.total:
            return None
        self.last = now
        speed = self.seen / max(now - self.start, 1e-6)
        if self.total:
            return f"{self.seen * 100 // self.total}% ({format_bytes(speed)}/s)"
        return f"{format_bytes(self.seen)} ({format_bytes(speed)}/s)"


class UploadFile:
    """A file as a request body, reporting progress as it is read."""

    def __init__(self, path: str, progress: LxcProgress):
        self.path = path
        self.total = os.path.getsize(path)
        self.rate = Rate(self.total)
        self.progress = progress

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    return
                status = self.rate.add(len(chunk))
                if status:
                    self.progress.update(status)
                yield chunk


def download(resp: Any, out: BinaryIO, progress: LxcProgress) -> int:
    """Copy a streaming response to ``out`` with progress; returns the byte count."""
    total = int(resp.headers.get("Content-Length") or 0)
    rate = Rate(total)
    n = 0
    for chunk in resp.iter_chunks():
        out.write(chunk)
        n += len(chunk)
        status = rate.add(len(chunk))
        if status:
            progress.update(status)
    return n
