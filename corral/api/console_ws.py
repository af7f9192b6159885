"""POST /1.0/instances/NAME/console: the console as a websocket operation ("0" and "control"), the
transport side; the instance layer opens the console (corral/instance/console.py)."""
from __future__ import annotations

import asyncio
import contextlib
import os

from corral.api.websockets import StreamSet, control_messages, pump_fd_to_ws, pump_ws_to_fd, window_size
from corral.apitypes import InstanceConsolePost
from corral.instance import console as iconsole
from corral.operations import WEBSOCKET, Work


def console_work(instances, inst, req: InstanceConsolePost) -> Work:
    from corral.instance.manager import resources
    iconsole.check_request(instances, inst, req)
    session = _WebsocketConsole(instances, inst)
    return Work(project=inst.project, cls=WEBSOCKET, description="Showing console",
                resources=resources(inst.name, inst.project), metadata={"fds": session.streams.fds()},
                run=session.run, connect=session.streams.connect)


class _WebsocketConsole:
    def __init__(self, instances, inst):
        self.instances, self.inst = instances, inst
        self.streams = StreamSet(["0", "control"])

    async def run(self, op):
        try:
            await self.streams.wait_connected()
            fd = await iconsole.open_console(self.instances, self.inst)
            try:
                loop = asyncio.get_running_loop()
                data = self.streams.sockets["0"]
                out = loop.create_task(pump_fd_to_ws(fd, data, eof_marker=False))
                control = loop.create_task(self._control(fd))
                # The session lasts until the client closes its data socket (or the console goes away).
                await pump_ws_to_fd(data, fd)
                for t in (out, control):
                    t.cancel()
                await asyncio.gather(out, control, return_exceptions=True)
            finally:
                os.close(fd)
        finally:
            self.streams.finished.set()

    async def _control(self, fd: int) -> None:
        ws = self.streams.sockets.get("control")
        if ws is None:   # not connected (it is optional)
            return
        async for data in control_messages(ws):
            size = window_size(data)
            if size is not None:
                with contextlib.suppress(ValueError, OSError):
                    iconsole.resize(fd, *size)
