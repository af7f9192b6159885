"""One connection to a VM's agent: the unix socket of QEMU's chardev, one I/O thread with a selector
over it and over every host-side fd of the sessions (pipes, socketpairs), and the channel table.

Threads: API calls run in their callers' threads; they register a channel, queue frames (send())
and wait on the channel's own events. Everything else (reading and dispatching frames, pumping the
sessions' fds) happens in the I/O thread. When the link breaks, every channel fails with AgentError
and the connection is finished; AgentClient opens a new one on the next call."""
from __future__ import annotations

import abc
import errno
import logging
import os
import selectors
import socket
import threading
import time
from collections import deque
from typing import Callable

from corral.instance.agent import protocol as P
from corral.instance.agent.errors import AgentError, AgentNotRunning

log = logging.getLogger(__name__)

HELLO_RETRY = 0.5
RECV_SIZE = 1 << 20


class Channel(abc.ABC):
    """What the I/O thread dispatches a channel's frames to (requests: channels.py; /dev/lxd streams:
    streams.py)."""

    def __init__(self, conn: "Connection", cid: int):
        self.conn, self.id = conn, cid

    @abc.abstractmethod
    def on_frame(self, ftype: int, flags: int, payload: bytes) -> None:
        """A frame of this channel (in the I/O thread)."""

    @abc.abstractmethod
    def on_fail(self, err: AgentError) -> None:
        """The connection failed: the channel's caller gets `err`."""


class Connection:
    def __init__(self, path: str, hostname: str = "", on_stream: Callable | None = None):
        self.path, self.hostname, self.on_stream = path, hostname, on_stream
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.channels: dict[int, Channel] = {}
        self.ready = threading.Event()       # the agent answered our HELLO
        self.finished = threading.Event()    # the I/O thread is done
        self.error: AgentError | None = None
        self.agent_pid: int | None = None
        self._next_id = 1
        self._wbuf: deque[bytes] = deque()
        self._calls: deque[Callable[[], None]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self.sock: socket.socket | None = None
        self.nonce = os.urandom(16)
        self.parser = P.Parser(self.nonce)
        self._thread: threading.Thread | None = None
        self._torn_down = False
        self._watched: dict[int, tuple[int, Callable[[int], None]]] = {}

    # ---- opening -------------------------------------------------------------------------

    def open(self, timeout: float) -> None:
        """Connect and handshake; AgentNotRunning when the agent does not answer within `timeout`."""
        deadline = time.monotonic() + timeout
        try:
            self.sock = self._connect(deadline)
        except BaseException:
            self._teardown()
            raise
        self.sock.setblocking(False)
        self.sel.register(self.sock, selectors.EVENT_READ, self._on_sock)
        self.sel.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        hello = P.frame(P.HELLO, 0, P.TLV().add(P.T_NONCE, self.nonce).add(P.T_HOSTNAME, self.hostname)
                        .add(P.T_VERSION, P.VERSION).bytes())
        # Zeros first: they complete any frame the agent still had half-read from an earlier
        # connection, and are skipped while it looks for a HELLO.
        self.send(bytes(P.MAX_TO_AGENT + P.HDR_LEN) + hello)
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"agent-{os.path.basename(self.path)}")
        self._thread.start()
        while True:
            left = deadline - time.monotonic()
            if self.ready.wait(max(0.0, min(HELLO_RETRY, left))):
                return
            if self.finished.is_set() or left <= 0:
                err = self.error
                self.close()
                raise AgentNotRunning(detail=str(err.message) if err else "no answer to HELLO")
            self.send(hello)

    def _connect(self, deadline: float) -> socket.socket:
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                s.connect(self.path)
                return s
            except OSError as e:
                s.close()
                if e.errno not in (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN) or time.monotonic() >= deadline:
                    raise AgentNotRunning(detail=f"cannot connect to {self.path}: {e.strerror or e}") from None
                time.sleep(0.05)

    # ---- used from any thread ----------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.ready.is_set() and not self.finished.is_set()

    def send(self, data: bytes) -> None:
        with self.lock:
            if self.finished.is_set():
                return
            self._wbuf.append(data)
        self._wake()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run fn in the I/O thread (at once in this one when that thread is gone)."""
        with self.lock:
            if not self._torn_down:
                self._calls.append(fn)
                fn = None
        if fn is None:
            self._wake()
        else:
            fn()

    def add_channel(self, make: Callable[[int], Channel]) -> Channel:
        """Register a new channel (built by `make(id)`); AgentError if the link is down."""
        with self.lock:
            if self.finished.is_set():
                raise AgentError(self.error.message if self.error else "agent connection closed")
            cid = self._next_id
            self._next_id = 1 if self._next_id >= 0x7FFFFFFF else self._next_id + 1
            ch = self.channels[cid] = make(cid)
            return ch

    def drop_channel(self, cid: int) -> None:
        with self.lock:
            self.channels.pop(cid, None)

    def close(self) -> None:
        self.call_soon(lambda: self._fail(AgentError("agent connection closed")))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._thread is None:
            self._teardown()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    # ---- the I/O thread ------------------------------------------------------------------

    def watch(self, fd: int, events: int, callback: Callable[[int], None]) -> None:
        """(I/O thread) Call callback(mask) when fd is ready for `events` (0: stop watching)."""
        old = self._watched.get(fd)
        if not events:
            if old:
                self.sel.unregister(fd)
                del self._watched[fd]
            return
        if old is None:
            self.sel.register(fd, events, callback)
        elif old != (events, callback):
            self.sel.modify(fd, events, callback)
        self._watched[fd] = (events, callback)

    def _run(self) -> None:
        try:
            while not self.finished.is_set():
                with self.lock:
                    want_write = bool(self._wbuf)
                if self.sock is not None:
                    self.sel.modify(self.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0),
                                    self._on_sock)
                for key, mask in self.sel.select(1.0):
                    if self.sel.get_map().get(key.fd) is not key:
                        continue   # unwatched (and maybe reused) by an earlier callback of this round
                    key.data(mask)
                    if self.finished.is_set():
                        break
                while self._calls and not self.finished.is_set():
                    with self.lock:
                        fn = self._calls.popleft() if self._calls else None
                    if fn:
                        fn()
        except Exception as e:   # a bug here must not leave callers waiting forever
            log.exception("agent connection %s: I/O thread failed", self.path)
            self._fail(AgentError(f"agent connection failed: {e}"))
        finally:
            self._teardown()

    def _on_wake(self, mask: int) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _on_sock(self, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = self.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as e:
                return self._fail(AgentError(f"agent connection lost: {e.strerror or e}"))
            if data == b"":
                return self._fail(AgentError("agent connection lost"))
            if data:
                try:
                    frames = self.parser.feed(data)
                except ValueError as e:
                    return self._fail(AgentError(f"agent protocol error: {e}"))
                for f in frames:
                    self._dispatch(*f)
                    if self.finished.is_set():
                        return
        if mask & selectors.EVENT_WRITE:
            self._flush()

    def _flush(self) -> None:
        while True:
            with self.lock:
                if not self._wbuf:
                    return
                chunk = self._wbuf[0]
            try:
                n = self.sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                return self._fail(AgentError(f"agent connection lost: {e.strerror or e}"))
            with self.lock:
                if n == len(chunk):
                    self._wbuf.popleft()
                else:
                    self._wbuf[0] = chunk[n:]

    def _dispatch(self, ftype: int, flags: int, cid: int, payload: bytes) -> None:
        if ftype == P.HELLO_ACK:
            if not self.ready.is_set():
                fields = P.parse_tlv(payload)
                self.agent_pid = P.tlv_int(fields, P.T_PID)
                version = P.tlv_int(fields, P.T_VERSION, 0)
                if version != P.VERSION:
                    log.warning("agent at %s speaks protocol %s, we speak %s", self.path, version, P.VERSION)
                self.ready.set()
            return
        if ftype == P.PROTO_ERROR:
            return self._fail(AgentError(f"the agent reported a protocol error: {payload.decode(errors='replace')}"))
        if ftype == P.STREAM_OPEN:
            from corral.instance.agent.streams import StreamChannel
            return StreamChannel.opened(self, cid, payload)
        if ftype == P.PONG:
            return
        with self.lock:
            ch = self.channels.get(cid)
        if ch is not None:
            ch.on_frame(ftype, flags, payload)

    def _fail(self, err: AgentError) -> None:
        if self.finished.is_set():
            return
        if self.ready.is_set():
            log.info("agent connection %s: %s", self.path, err.message)
        with self.lock:
            self.error = err
            self.finished.set()
            chans = list(self.channels.values())
            self.channels.clear()
            self._wbuf.clear()
        for ch in chans:
            try:
                ch.on_fail(err)
            except Exception:
                log.exception("agent channel %d: failing it failed", ch.id)

    def _teardown(self) -> None:
        self.finished.set()
        with self.lock:
            self._torn_down = True
            calls = list(self._calls)
            self._calls.clear()
        for fn in calls:     # closing what channels own is safe without the selector
            try:
                fn()
            except Exception:
                log.exception("agent connection %s: a late call failed", self.path)
        for fd in list(self._watched):
            try:
                self.sel.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass
        self._watched.clear()
        self.sel.close()
        for s in (self.sock, self._wake_r, self._wake_w):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
