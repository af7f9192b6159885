"""POST /1.0/instances/NAME/exec with LXD's websocket protocol.

wait-for-websocket=true: a websocket operation whose metadata lists one secret per stream:
"0","1","2" and "control" (non-interactive) or "0" and "control" (interactive, a pty). The command
starts once every stream is connected. An empty message (or a close) on stdin means EOF; at the
end each output stream gets an empty message and a close. Control messages: window-resize, signal.
Without websockets the output goes to log files (record-output) or nowhere.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets

from aiohttp import WSMsgType, web

from corral.errors import BadRequest, Forbidden
from corral.fdio import write_all
from corral.operations import TASK, WEBSOCKET

log = logging.getLogger(__name__)

DEFAULT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": "/root", "USER": "root", "LANG": "C.UTF-8"}
CONNECT_TIMEOUT = 10
DRAIN_TIMEOUT = 2


def _int_field(body: dict, key: str, default: int) -> int:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise BadRequest(f'Invalid value for field "{key}": expected integer')
    return v


class ExecSession:
    def __init__(self, instances, inst, body: dict, requestor: dict | None):
        self.instances = instances
        self.inst = inst
        command = body.get("command")
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise BadRequest("Command must be a non-empty array of strings")
        self.command = command
        env = body.get("environment") or {}
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise BadRequest('Invalid value for field "environment": expected a map of strings')
        self.env = dict(DEFAULT_ENV)
        self.env.update({k[len("environment."):]: v for k, v in inst.config.items() if k.startswith("environment.")})
        self.env.update(env)
        self.interactive = bool(body.get("interactive"))
        self.websockets = bool(body.get("wait-for-websocket"))
        self.record = bool(body.get("record-output"))
        self.width = _int_field(body, "width", 80) or 80
        self.height = _int_field(body, "height", 24) or 24
        self.uid = _int_field(body, "user", 0)
        self.gid = _int_field(body, "group", 0)
        self.cwd = body.get("cwd") or self.env.get("HOME") or "/"
        if not isinstance(self.cwd, str):
            raise BadRequest('Invalid value for field "cwd": expected string')
        self.requestor = requestor
        streams = ["0", "control"] if self.interactive else ["0", "1", "2", "control"]
        self.secrets = {s: secrets.token_hex(32) for s in streams}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self._connected = asyncio.Event()
        self._finished = asyncio.Event()
        self._proc_ready = asyncio.Event()
        self._proc = None
        self._open_fds: set[int] = set()
        self.op = None

    # ---- operation ------------------------------------------------------------------------

    def start(self):
        project, name = self.inst.project, self.inst.name
        if self.instances.status(self.inst) != "Running":
            raise BadRequest("Instance is not running")
        from corral.instance.manager import resources
        meta = {"command": self.command, "environment": self.env,
                "fds": dict(self.secrets), "interactive": self.interactive} if self.websockets else None
        self.op = self.instances.d.operations.create(
            project=project, cls=WEBSOCKET if self.websockets else TASK, description="Executing command",
            resources=resources(name, project), metadata=meta, run=self._run,
            connect=self._connect if self.websockets else None)
        self.instances.events.lifecycle("instance-exec", f"/1.0/instances/{name}", project=project,
                                        context={"command": self.command}, requestor=self.requestor)
        return self.op

    async def _spawn(self):
        i = self.instances
        return await asyncio.to_thread(
            i.driver.exec, i.driver_name(self.inst.project, self.inst.name), self.command, self.env,
            self.cwd, self.uid, self.gid, self.interactive, self.width, self.height)

    async def _run(self, op):
        try:
            if self.websockets:
                try:
                    await asyncio.wait_for(self._connected.wait(), CONNECT_TIMEOUT)
                except asyncio.TimeoutError:
                    raise BadRequest("Timed out waiting for websockets to connect") from None
                return await self._run_websockets()
            return await self._run_detached(op)
        finally:
            self._finished.set()

    # ---- without websockets ---------------------------------------------------------------

    async def _run_detached(self, op) -> dict:
        proc = await self._spawn()
        logs = self.instances.log_dir(self.inst.project, self.inst.name)
        targets = {}
        if self.record:
            os.makedirs(logs, mode=0o700, exist_ok=True)
            targets = {fd: os.path.join(logs, f"exec_{op.id}.{kind}") for fd, kind in (("1", "stdout"), ("2", "stderr"))}
        os.close(proc.stdin)

        def drain(src: int, dst: str | None) -> None:
            with contextlib.ExitStack() as stack:
                out = stack.enter_context(open(dst, "wb")) if dst else None
                while chunk := os.read(src, 65536):
                    if out:
                        out.write(chunk)
                os.close(src)

        # Reap the command as soon as it ends, even if a background child keeps the pipes open.
        code, _, _ = await asyncio.gather(asyncio.to_thread(proc.wait),
                                          asyncio.to_thread(drain, proc.stdout, targets.get("1")),
                                          asyncio.to_thread(drain, proc.stderr, targets.get("2")))
        meta: dict = {"return": code}
        if self.record:
            base = f"/1.0/instances/{self.inst.name}/logs"
            suffix = "" if self.inst.project == "default" else f"?project={self.inst.project}"
            meta["output"] = {fd: f"{base}/{os.path.basename(p)}{suffix}" for fd, p in targets.items()}
        return meta

    # ---- websockets -----------------------------------------------------------------------

    async def _connect(self, op, request: web.Request, secret: str):
        stream = next((s for s, v in self.secrets.items() if secrets.compare_digest(v, secret)), None)
        if stream is None:
            raise Forbidden("Invalid websocket secret")
        if stream in self.sockets:
            raise BadRequest("This websocket is already connected")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.sockets[stream] = ws
        # The command starts once the data streams are connected; control is optional (pylxd
        # never opens it), as with LXD.
        if all(s in self.sockets for s in self.secrets if s != "control"):
            self._connected.set()
        if stream == "control":
            await self._control(ws)
        await self._finished.wait()
        with contextlib.suppress(Exception):
            await ws.close()
        return ws

    async def _control(self, ws: web.WebSocketResponse) -> None:
        """Runs until the control socket closes; window-resize and signal messages."""
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                continue
            await self._proc_ready.wait()
            cmd = data.get("command")
            if cmd == "window-resize":
                args = data.get("args") or {}
                with contextlib.suppress(ValueError, OSError):
                    self._proc.resize(int(args.get("width", 80)), int(args.get("height", 24)))
            elif cmd == "signal":
                with contextlib.suppress(ValueError, TypeError):
                    self._proc.kill(int(data.get("signal")))

    async def _run_websockets(self) -> dict:
        self._proc = proc = await self._spawn()
        self._open_fds = {fd for fd in (proc.pty, proc.stdin, proc.stdout, proc.stderr) if fd is not None}
        self._proc_ready.set()
        loop = asyncio.get_running_loop()
        if self.interactive:
            outputs = [(proc.pty, self.sockets["0"])]
            inputs = [(self.sockets["0"], proc.pty)]
        else:
            outputs = [(proc.stdout, self.sockets["1"]), (proc.stderr, self.sockets["2"])]
            inputs = [(self.sockets["0"], proc.stdin)]
        pumps = [loop.create_task(self._pump_out(fd, ws)) for fd, ws in outputs]
        feeders = [loop.create_task(self._pump_in(ws, fd, close=not self.interactive)) for ws, fd in inputs]
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
        for ws in self.sockets.values():
            with contextlib.suppress(Exception):
                await ws.close()
        return {"return": code}

    async def _pump_out(self, fd: int, ws: web.WebSocketResponse) -> None:
        await pump_fd_to_ws(fd, ws, eof_marker=not self.interactive)

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


async def pump_fd_to_ws(fd: int, ws: web.WebSocketResponse, eof_marker: bool) -> None:
    """Copy what `fd` yields to the websocket until EOF; then LXD's empty-message EOF marker."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:   # EIO on a pty once the other side is gone
                data = b""
            if not data:
                break
            await ws.send_bytes(data)
    finally:
        loop.remove_reader(fd)
        if eof_marker:
            with contextlib.suppress(Exception):
                await ws.send_str("")


async def pump_ws_to_fd(ws: web.WebSocketResponse, fd: int) -> None:
    """Copy websocket messages into `fd` until an empty message or the socket closes."""
    try:
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                break
            data = msg.data.encode() if isinstance(msg.data, str) else msg.data
            if not data:
                break
            await asyncio.to_thread(write_all, fd, data)
    except OSError:
        pass
