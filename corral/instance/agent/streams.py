"""Pumping host fds to and from a channel's streams in the connection's I/O thread, with the credit
flow control of docs/vm-agent.md: a Source (host fd -> the agent, stream 0, only within the credit
the agent granted) and a Sink (the agent's stream 1 or 2 -> a host fd, credit given back as the
bytes are written). Also the /dev/lxd stream channels the agent opens."""
from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
from collections import deque

from corral.instance.agent import protocol as P
from corral.instance.agent.connection import Channel, Connection
from corral.instance.agent.errors import AgentError

log = logging.getLogger(__name__)


class Source:
    """A host fd whose bytes go to the agent as DATA on stream 0, then EOF."""

    def __init__(self, ch: Channel, fd: int):
        self.ch, self.fd = ch, fd
        self.credit = P.WINDOW
        self.closed = False
        os.set_blocking(fd, False)

    def arm(self) -> None:
        if not self.closed:
            self.ch.conn.watch(self.fd, selectors.EVENT_READ if self.credit > 0 else 0, self._on_read)

    def add_credit(self, n: int) -> None:
        self.credit += n
        self.arm()

    def _on_read(self, mask: int) -> None:
        try:
            data = os.read(self.fd, min(self.credit, P.DATA_CHUNK))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.ch.conn.send(P.frame(P.EOF, self.ch.id))
            self.close()
            self.ch.check_done()
            return
        self.credit -= len(data)
        self.ch.conn.send(P.frame(P.DATA, self.ch.id, data))
        self.arm()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.ch.conn.watch(self.fd, 0, None)
            os.close(self.fd)


class Sink:
    """Bytes of the agent's stream `stream` written into a host fd (a pipe's write end, or a
    socket: then shut down for writing at EOF)."""

    def __init__(self, ch: Channel, stream: int, fd: int | None = None, sock: socket.socket | None = None):
        self.ch, self.stream, self.sock = ch, stream, sock
        self.fd = sock.fileno() if sock is not None else fd
        self.buf: deque[memoryview] = deque()
        self.eof = False
        self.closed = False
        self.unacked = 0
        os.set_blocking(self.fd, False)

    def data(self, payload: bytes) -> None:
        if self.closed or self.eof:
            return
        self.buf.append(memoryview(payload))
        self.pump()

    def end(self) -> None:
        self.eof = True
        if not self.buf:
            self.finish()

    def pump(self, mask: int = 0) -> None:
        while self.buf and not self.closed:
            try:
                n = os.write(self.fd, self.buf[0])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:   # the reader is gone: tell the agent, drop the rest
                self.ch.conn.send(P.frame(P.SHUT, self.ch.id, flags=self.stream))
                self.buf.clear()
                self.finish(shutdown=False)
                return
            self.unacked += n
            if n == len(self.buf[0]):
                self.buf.popleft()
            else:
                self.buf[0] = self.buf[0][n:]
        if self.closed:
            return
        if self.unacked and (self.unacked >= P.CREDIT_BATCH or not self.buf):
            self.ch.conn.send(P.frame(P.CREDIT, self.ch.id, P.u32(self.unacked), flags=self.stream))
            self.unacked = 0
        self.ch.conn.watch(self.fd, selectors.EVENT_WRITE if self.buf else 0, self.pump)
        if not self.buf and self.eof:
            self.finish()

    def finish(self, shutdown: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        self.ch.conn.watch(self.fd, 0, None)
        if self.sock is not None:
            if shutdown:
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            self.sock.close()
        else:
            os.close(self.fd)
        self.ch.check_done()

    def abort(self) -> None:
        self.buf.clear()
        self.finish(shutdown=False)


class StreamChannel(Channel):
    """A /dev/lxd connection the guest opened: a socketpair whose other end goes to on_stream."""

    def __init__(self, conn: Connection, cid: int, ours: socket.socket):
        super().__init__(conn, cid)
        fd = ours.detach()
        self.source = Source(self, fd)
        self.sink = Sink(self, 1, sock=socket.socket(fileno=os.dup(fd)))

    @classmethod
    def opened(cls, conn: Connection, cid: int, payload: bytes) -> None:
        """(I/O thread) STREAM_OPEN from the agent."""
        if conn.on_stream is None:
            conn.send(P.frame(P.CLOSE, cid))
            return
        theirs, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ch = cls(conn, cid, ours)
        with conn.lock:
            conn.channels[cid] = ch
        ch.source.arm()
        threading.Thread(target=cls._serve, args=(conn.on_stream, theirs), daemon=True,
                         name=f"devlxd-{cid & 0x7FFFFFFF}").start()

    @staticmethod
    def _serve(on_stream, sock: socket.socket) -> None:
        try:
            on_stream(sock)
        except Exception:
            log.exception("/dev/lxd stream handler failed")
            sock.close()

    def on_frame(self, ftype: int, flags: int, payload: bytes) -> None:
        if ftype == P.DATA and flags == 1:
            self.sink.data(payload)
        elif ftype == P.EOF and flags == 1:
            self.sink.end()
        elif ftype == P.CREDIT and flags == 0 and len(payload) == 4:
            self.source.add_credit(P.get_u32(payload))
        elif ftype == P.CLOSE:
            self._abort()

    def on_fail(self, err: AgentError) -> None:
        self._abort()

    def _abort(self) -> None:
        self.source.close()
        self.sink.abort()
        self.conn.drop_channel(self.id)

    def check_done(self) -> None:
        if self.sink.closed and self.source.closed:
            self.conn.drop_channel(self.id)
