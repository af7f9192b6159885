"""POST /1.0/instances/NAME/exec with LXD's websocket protocol, the transport side.

wait-for-websocket=true: a websocket operation whose metadata lists one secret per stream:
"0","1","2" and "control" (non-interactive) or "0" and "control" (interactive, a pty). The command
starts once every data stream is connected. An empty message (or a close) on stdin means EOF; at
the end each output stream gets an empty message and a close. Control messages: window-resize,
signal. Without websockets the instance layer runs it alone (corral/instance/exec.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import os

from aiohttp import web

from corral.api.websockets import StreamSet, control_messages, pump_fd_to_ws, pump_ws_to_fd, window_size
from corral.apitypes import InstanceExecPost
from corral.instance import exec as iexec
from corral.operations import WEBSOCKET, Work

DRAIN_TIMEOUT = 2


def exec_work(instances, inst, req: InstanceExecPost, requestor: dict | None) -> Work:
    """The exec operation's work (400 now for a bad command or an instance that is not running)."""
    from corral.instance.manager import resources
    cmd = iexec.command_of(inst, req)
    iexec.check_running(instances, inst)
    res = resources(inst.name, inst.project)

    def announce(op) -> None:
        iexec.announce(instances, inst, cmd, requestor)

    if not req.wait_for_websocket:
        async def run(op):
            return await iexec.run_detached(instances, inst, cmd, op.id, req.record_output)
        return Work(project=inst.project, description="Executing command", resources=res, run=run,
                    on_start=announce)
    session = _WebsocketExec(instances, inst, cmd)
    meta = {"command": cmd.command, "environment": cmd.env, "fds": session.streams.fds(),
            "interactive": cmd.interactive}
    return Work(project=inst.project, cls=WEBSOCKET, description="Executing command", resources=res,
                metadata=meta, run=session.run, connect=session.connect, on_start=announce)


class _WebsocketExec:
    def __init__(self, instances, inst, cmd: iexec.Command):
        self.instances, self.inst, self.cmd = instances, inst, cmd
        self.streams = StreamSet(["0", "control"] if cmd.interactive else ["0", "1", "2", "control"],
                                 reconnect=False)
        self._proc_ready = asyncio.Event()
        self._proc = None
        self._open_fds: set[int] = set()

    async def connect(self, op, request: web.Request, secret: str):
        return await self.streams.connect(op, request, secret, on_control=self._control)

    async def _control(self, ws: web.WebSocketResponse) -> None:
        """Runs until the control socket closes: window-resize and signal messages."""
        async for data in control_messages(ws):
            await self._proc_ready.wait()
            size = window_size(data)
            if size is not None:
                with contextlib.suppress(ValueError, OSError):
                    self._proc.resize(*size)
            elif data.get("command") == "signal":
                with contextlib.suppress(ValueError, TypeError):
                    self._proc.kill(int(data.get("signal")))

    async def run(self, op):
        try:
            await self.streams.wait_connected()
            return await self._run()
        finally:
            self.streams.finished.set()

    async def _run(self) -> dict:
        self._proc = proc = await iexec.spawn(self.instances, self.inst, self.cmd)
        self._open_fds = {fd for fd in (proc.pty, proc.stdin, proc.stdout, proc.stderr) if fd is not None}
        self._proc_ready.set()
        loop = asyncio.get_running_loop()
        sockets = self.streams.sockets
        if self.cmd.interactive:
            outputs, inputs = [(proc.pty, sockets["0"])], [(sockets["0"], proc.pty)]
        else:
            outputs = [(proc.stdout, sockets["1"]), (proc.stderr, sockets["2"])]
            inputs = [(sockets["0"], proc.stdin)]
        pumps = [loop.create_task(pump_fd_to_ws(fd, ws, eof_marker=not self.cmd.interactive)) for fd, ws in outputs]
        feeders = [loop.create_task(self._pump_in(ws, fd, close=not self.cmd.interactive)) for ws, fd in inputs]
        code = await asyncio.to_thread(proc.wait)
        # Output still buffered in the pipes is delivered; a background child holding them open
        # does not keep the session alive for more than DRAIN_TIMEOUT.
        done, pending = await asyncio.wait(pumps, timeout=DRAIN_TIMEOUT)
        for t in pending:
            t.cancel()
        for t in feeders:
            t.cancel()
        await asyncio.gather(*pumps, *feeders, return_exceptions=True)
        for fd in list(self._open_fds):
            self._close(fd)
        await self.streams.close_all()
        return {"return": code}

    async def _pump_in(self, ws: web.WebSocketResponse, fd: int, close: bool) -> None:
        try:
            await pump_ws_to_fd(ws, fd)
        finally:
            if close:
                self._close(fd)

    def _close(self, fd: int) -> None:
        """Close one of the process's fds once (a second close could hit a reused number)."""
        if fd in self._open_fds:
            self._open_fds.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
