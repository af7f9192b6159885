"""An instance's console (POST /1.0/instances/NAME/console), the instance side: opening it through
the instance driver and sizing it. The websocket transport is the API's: corral/api/console_ws.py."""
from __future__ import annotations

import asyncio

from corral.apitypes import InstanceConsolePost
from corral.errors import BadRequest
from corral.instance.tty import set_winsize


def check_request(instances, inst, req: InstanceConsolePost) -> None:
    """400 now for a console type other than "console" or an instance that is not running."""
    if (req.type or "console") != "console":
        raise BadRequest(f'Unknown console type "{req.type}"')
    if instances.status(inst) != "Running":
        raise BadRequest("Instance is not running")


async def open_console(instances, inst) -> int:
    """A file descriptor on the instance's console (the caller closes it)."""
    return await asyncio.to_thread(instances.instance(inst).console)


def resize(fd: int, width: int, height: int) -> None:
    import stat
    import os
    if stat.S_ISSOCK(os.fstat(fd).st_mode):   # a VM's serial console: a socket, no window size
        return
    set_winsize(fd, width, height)
