"""POST /1.0/instances/NAME/console: the console as a websocket operation ("0" and "control")."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets

from aiohttp import WSMsgType, web

from corral.errors import BadRequest, Forbidden
from corral.instance.exec import CONNECT_TIMEOUT, pump_fd_to_ws, pump_ws_to_fd
from corral.instance.tty import set_winsize
from corral.operations import WEBSOCKET


class ConsoleSession:
    def __init__(self, instances, inst, body: dict):
        self.instances = instances
        self.inst = inst
        if (body.get("type") or "console") != "console":
            raise BadRequest(f'Unknown console type "{body.get("type")}"')
        self.width = int(body.get("width") or 80)
        self.height = int(body.get("height") or 24)
        self.secrets = {"0": secrets.token_hex(32), "control": secrets.token_hex(32)}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self._connected = asyncio.Event()
        self._finished = asyncio.Event()

    def start(self):
        if self.instances.status(self.inst) != "Running":
            raise BadRequest("Instance is not running")
        from corral.instance.manager import resources
        return self.instances.d.operations.create(
            project=self.inst.project, cls=WEBSOCKET, description="Showing console",
            resources=resources(self.inst.name, self.inst.project),
            metadata={"fds": dict(self.secrets)}, run=self._run, connect=self._connect)

    async def _connect(self, op, request: web.Request, secret: str):
        stream = next((s for s, v in self.secrets.items() if secrets.compare_digest(v, secret)), None)
        if stream is None:
            raise Forbidden("Invalid websocket secret")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.sockets[stream] = ws
        # The command starts once the data streams are connected; control is optional (pylxd
        # never opens it), as with LXD.
        if all(s in self.sockets for s in self.secrets if s != "control"):
            self._connected.set()
        await self._finished.wait()
        with contextlib.suppress(Exception):
            await ws.close()
        return ws

    async def _run(self, op):
        try:
            try:
                await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT)
            except asyncio.TimeoutError:
                raise BadRequest("Timed out waiting for websockets to connect") from None
            i = self.instances
            fd = await asyncio.to_thread(i.driver.console, i.driver_name(self.inst.project, self.inst.name))
            try:
                loop = asyncio.get_running_loop()
                out = loop.create_task(pump_fd_to_ws(fd, self.sockets["0"], eof_marker=False))
                control = loop.create_task(self._control(fd))
                # The session lasts until the client closes its data socket (or the console goes away).
                await pump_ws_to_fd(self.sockets["0"], fd)
                for t in (out, control):
                    t.cancel()
                await asyncio.gather(out, control, return_exceptions=True)
            finally:
                os.close(fd)
        finally:
            self._finished.set()

    async def _control(self, fd: int) -> None:
        async for msg in self.sockets["control"]:
            if msg.type != WSMsgType.TEXT:
                continue
            with contextlib.suppress(ValueError, OSError, AttributeError):
                data = json.loads(msg.data)
                if data.get("command") == "window-resize":
                    args = data.get("args") or {}
                    set_winsize(fd, int(args.get("width", 80)), int(args.get("height", 24)))
