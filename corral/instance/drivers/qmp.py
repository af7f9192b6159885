"""QMP connections to running QEMU processes, on the `qemu.qmp` library.

qemu.qmp is asyncio; the instance drivers are blocking (they run in worker threads). One event loop in
a thread of its own holds every VM's QMP connection: blocking callers submit coroutines to it and wait.
A connection stays open while the VM runs, so QEMU's events (SHUTDOWN, RESET, STOP, RESUME) and the loss
of the connection (QEMU exited) are seen at once and reported through `on_event(name, event)`.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable

from qemu.qmp import ExecuteError, QMPClient, Runstate

from corral.instance.drivers.base import DriverError

log = logging.getLogger(__name__)
COMMAND_TIMEOUT = 30.0


class _Loop:
    """The one event loop thread (started on first use)."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="qmp-loop", daemon=True).start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coro, timeout: float | None = COMMAND_TIMEOUT):
        fut = asyncio.run_coroutine_threadsafe(coro, cls.get())
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise DriverError("QMP: no answer from QEMU in time") from None


class Monitor:
    """One VM's QMP connection. `on_event(name, event_dict)` is called in the QMP loop thread for every
    QEMU event, and with name "DISCONNECTED" once the connection is lost."""

    def __init__(self, name: str, path: str, on_event: Callable[[str, dict], None] | None = None):
        self.name = name
        self.path = path
        self.on_event = on_event
        self._client: QMPClient | None = None
        self._watch: list[asyncio.Task] = []
        self.closed = False

    # ---- connecting -------------------------------------------------------------------------

    def connect(self, timeout: float = 10.0) -> None:
        """Connect (waiting up to `timeout` for QEMU to listen)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                _Loop.run(self._connect(), timeout=max(timeout, 1.0))
                return
            except (OSError, DriverError, ConnectionError) as e:
                err = e
            except Exception as e:  # noqa: BLE001 - qemu.qmp wraps socket errors in its own types
                err = e
            if time.monotonic() >= deadline:
                raise DriverError(f"QMP: cannot connect to {self.path}: {err}")
            time.sleep(0.05)

    async def _connect(self) -> None:
        client = QMPClient(self.name)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        await client.connect(sock)
        self._client = client
        loop = asyncio.get_running_loop()
        self._watch = [loop.create_task(self._events(client)), loop.create_task(self._runstate(client))]

    async def _events(self, client: QMPClient) -> None:
        try:
            async for event in client.events:
                self._emit(event.get("event", ""), dict(event))
        except asyncio.CancelledError:
            return
        except Exception:  # noqa: BLE001 - the connection is gone either way
            pass

    def _emit(self, name: str, event: dict) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(name, event)
        except Exception:  # noqa: BLE001 - a callback failing must not stop the listener
            log.exception("vm %s: QMP event handler", self.name)

    async def _runstate(self, client: QMPClient) -> None:
        """DISCONNECTED once QEMU closes the connection (it exited) or it is otherwise lost."""
        try:
            while client.runstate == Runstate.RUNNING:
                await client.runstate_changed()
        except asyncio.CancelledError:
            return
        if not self.closed:
            self._emit("DISCONNECTED", {})

    # ---- commands -------------------------------------------------------------------------

    def execute(self, cmd: str, args: dict | None = None, timeout: float = COMMAND_TIMEOUT):
        client = self._client
        if client is None:
            raise DriverError("QMP: not connected")
        try:
            return _Loop.run(client.execute(cmd, args), timeout=timeout)
        except ExecuteError as e:
            raise DriverError(f"QMP {cmd}: {e.error.desc}") from None
        except DriverError:
            raise
        except Exception as e:  # noqa: BLE001 - a lost connection, named
            raise DriverError(f"QMP {cmd}: {e}") from None

    def send_fd(self, fd: int, fdname: str) -> None:
        """Hand QEMU a file descriptor (SCM_RIGHTS) under `fdname` (QMP getfd)."""
        client = self._client
        if client is None:
            raise DriverError("QMP: not connected")

        async def go():
            client.send_fd_scm(fd)
            return await client.execute("getfd", {"fdname": fdname})
        try:
            _Loop.run(go())
        except ExecuteError as e:
            raise DriverError(f"QMP getfd: {e.error.desc}") from None

    def alive(self) -> bool:
        c = self._client
        return c is not None and c.runstate.name == "RUNNING"

    def close(self) -> None:
        self.closed = True
        client, self._client = self._client, None
        if client is None:
            return

        async def go():
            for task in self._watch:
                task.cancel()
            try:
                await client.disconnect()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
        try:
            _Loop.run(go(), timeout=5)
        except DriverError:
            pass
