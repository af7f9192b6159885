"""Small helpers on raw file descriptors."""
from __future__ import annotations

import os
import select


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte; waits for room on a non-blocking fd (a pty master with a full buffer)."""
    view = memoryview(data).cast("B")
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1)
            continue
        view = view[n:]
