"""The host side of each kind of channel: a request and its reply, an exec session (an ExecProcess),
a file read (a file object) and a file write."""
from __future__ import annotations

import errno
import io
import os
import socket
import threading
from typing import Any

from corral.instance.agent import protocol as P
from corral.instance.agent.connection import Channel, Connection
from corral.instance.agent.errors import AgentError
from corral.instance.agent.streams import Sink, Source
from corral.instance.drivers.base import ExecProcess

REQUEST_TIMEOUT = 60.0


class Request(Channel):
    """One request and its REPLY (a TLV dict); subclasses take the frames that follow."""

    def __init__(self, conn: Connection, cid: int):
        super().__init__(conn, cid)
        self.replied = threading.Event()
        self.fields: dict[int, list[bytes]] = {}
        self.err: AgentError | None = None

    def on_frame(self, ftype: int, flags: int, payload: bytes) -> None:
        if ftype == P.REPLY:
            self.on_reply(payload)
        elif ftype == P.CLOSE:
            self.on_fail(AgentError("the agent closed the session"))

    def on_reply(self, payload: bytes) -> None:
        try:
            self.fields = P.parse_tlv(payload)
        except ValueError:
            self.fields = P.parse_tlv(P.TLV().add(P.T_ERRNO, errno.EPROTO)
                                      .add(P.T_MSG, "malformed reply from the agent").bytes())
        self.got_reply()
        if self.errno:
            self.conn.drop_channel(self.id)
        self.replied.set()

    def got_reply(self) -> None:
        """(I/O thread) The reply is in .fields, before waiters wake up."""

    def on_fail(self, err: AgentError) -> None:
        self.err = err
        self.conn.drop_channel(self.id)
        self.replied.set()

    @property
    def errno(self) -> int:
        return P.tlv_int(self.fields, P.T_ERRNO, 0) or 0

    @property
    def message(self) -> str:
        return P.tlv_str(self.fields, P.T_MSG) or os.strerror(self.errno)

    def wait_reply(self, timeout: float = REQUEST_TIMEOUT) -> dict[int, list[bytes]]:
        """The reply's fields; AgentError for a link failure, a timeout, or (errno set) the
        guest's error as given by the caller's check of .errno."""
        if not self.replied.wait(timeout):
            self.conn.send(P.frame(P.CLOSE, self.id))
            self.conn.drop_channel(self.id)
            raise AgentError(f"the agent did not answer within {timeout:g}s")
        if self.err is not None:
            raise self.err
        return self.fields


def simple(conn: Connection, ftype: int, tlv: P.TLV, timeout: float = REQUEST_TIMEOUT) -> Request:
    """Send a request whose answer is just its REPLY; the (replied) channel, dropped."""
    req = conn.add_channel(lambda cid: Request(conn, cid))
    conn.send(P.frame(ftype, req.id, tlv.bytes()))
    req.wait_reply(timeout)
    conn.drop_channel(req.id)
    return req


# ---- exec ------------------------------------------------------------------------------------

class AgentExecProcess(Request, ExecProcess):
    """A command running in the guest. The caller owns .pty (a socket, raw bytes both ways) or
    .stdin/.stdout/.stderr (pipes) and closes them."""

    def __init__(self, conn: Connection, cid: int, interactive: bool):
        Request.__init__(self, conn, cid)
        self.pid = 0
        self.pty = self.stdin = self.stdout = self.stderr = None
        self.code: int | None = None
        self.done = threading.Event()
        self.sinks: dict[int, Sink] = {}
        if interactive:
            theirs, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            self.pty = theirs.detach()
            fd = ours.detach()
            self.source = Source(self, fd)
            self.sinks[1] = Sink(self, 1, sock=socket.socket(fileno=os.dup(fd)))
        else:
            r0, w0 = os.pipe()
            r1, w1 = os.pipe()
            r2, w2 = os.pipe()
            self.stdin, self.stdout, self.stderr = w0, r1, r2
            self.source = Source(self, r0)
            self.sinks[1] = Sink(self, 1, fd=w1)
            self.sinks[2] = Sink(self, 2, fd=w2)

    def caller_fds(self) -> list[int]:
        return [fd for fd in (self.pty, self.stdin, self.stdout, self.stderr) if fd is not None]

    def got_reply(self) -> None:
        if self.errno:
            self.close_ours()
        else:
            self.pid = P.tlv_int(self.fields, P.T_PID, 0) or 0
            self.source.arm()

    def on_frame(self, ftype: int, flags: int, payload: bytes) -> None:
        if ftype == P.DATA and flags in self.sinks:
            self.sinks[flags].data(payload)
        elif ftype == P.EOF and flags in self.sinks:
            self.sinks[flags].end()
        elif ftype == P.CREDIT and flags == 0 and len(payload) == 4:
            self.source.add_credit(P.get_u32(payload))
        elif ftype == P.EXIT:
            try:
                self.code = P.tlv_int(P.parse_tlv(payload), P.T_CODE, -1)
            except ValueError:
                self.code = -1
            self.done.set()
            self.check_done()
        else:
            super().on_frame(ftype, flags, payload)

    def check_done(self) -> None:
        """The session is over on our side once the exit is known and the output has ended."""
        if self.code is not None and all(s.closed for s in self.sinks.values()):
            self.source.close()
            self.conn.drop_channel(self.id)

    def on_fail(self, err: AgentError) -> None:
        super().on_fail(err)
        self.close_ours()
        self.done.set()

    def close_ours(self) -> None:
        """(I/O thread) Close the fds of our side of the session."""
        self.source.close()
        for s in self.sinks.values():
            s.abort()

    # ExecProcess
    def wait(self) -> int:
        """The exit code (128+N when killed by signal N); AgentError if the link to the agent broke
        before the command ended (its fate is then unknown: a new connection kills it)."""
        self.done.wait()
        if self.code is None:
            raise self.err or AgentError("agent connection lost")
        return self.code

    def kill(self, signum: int) -> None:
        if self.code is None:
            self.conn.send(P.frame(P.SIGNAL, self.id, P.u32(signum)))

    def resize(self, width: int, height: int) -> None:
        if self.pty is not None and self.code is None:
            self.conn.send(P.frame(P.RESIZE, self.id, P.u32(width) + P.u32(height)))


# ---- files -----------------------------------------------------------------------------------

class GetChannel(Request):
    """FILE_GET: the reply (stat), then the content as DATA on stream 1 until EOF."""

    def __init__(self, conn: Connection, cid: int):
        super().__init__(conn, cid)
        self.cond = threading.Condition()
        self.chunks: list[bytes] = []
        self.eof = False
        self.unacked = 0

    def on_frame(self, ftype: int, flags: int, payload: bytes) -> None:
        if ftype == P.DATA and flags == 1:
            with self.cond:
                self.chunks.append(payload)
                self.cond.notify_all()
        elif ftype == P.EOF and flags == 1:
            err = None
            if payload:
                code = P.tlv_int(P.parse_tlv(payload), P.T_ERRNO, 0)
                err = AgentError(f"Failed to read: {os.strerror(code)}", code) if code else None
            with self.cond:
                self.eof = True
                self.err = self.err or err
                self.cond.notify_all()
            self.conn.drop_channel(self.id)
        else:
            super().on_frame(ftype, flags, payload)

    def on_fail(self, err: AgentError) -> None:
        with self.cond:
            super().on_fail(err)
            self.cond.notify_all()

    def read(self, n: int) -> bytes:
        with self.cond:
            while not self.chunks and not self.eof and self.err is None:
                if not self.cond.wait(REQUEST_TIMEOUT):
                    raise AgentError(f"the agent sent nothing for {REQUEST_TIMEOUT:g}s")
            if self.chunks:
                out, size = [], 0
                while self.chunks and size < n:
                    c = self.chunks.pop(0)
                    if size + len(c) > n:
                        self.chunks.insert(0, c[n - size:])
                        c = c[:n - size]
                    out.append(c)
                    size += len(c)
                self.unacked += size
                if self.unacked >= P.CREDIT_BATCH and not self.eof:
                    self.conn.send(P.frame(P.CREDIT, self.id, P.u32(self.unacked), flags=1))
                    self.unacked = 0
                return b"".join(out)
            if self.err is not None:
                raise self.err
            return b""

    def read_all(self) -> bytes:
        parts = []
        while chunk := self.read(1 << 20):
            parts.append(chunk)
        return b"".join(parts)

    def abandon(self) -> None:
        with self.cond:
            done = self.eof or self.err is not None
            self.chunks.clear()
        if not done:
            self.conn.send(P.frame(P.CLOSE, self.id))
            self.conn.drop_channel(self.id)


class AgentFile(io.RawIOBase):
    """A regular file of the guest being read (Entry.file): read() gives what has arrived, up to n
    bytes; close() before the end tells the agent to stop."""

    def __init__(self, ch: GetChannel, size: int):
        super().__init__()
        self._ch = ch
        self.size = size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._ch.read(len(b))
        b[:len(data)] = data
        return len(data)

    def read(self, n: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed file")
        if n is None or n < 0:
            return self._ch.read_all()
        return self._ch.read(n)

    def close(self) -> None:
        if not self.closed:
            self._ch.abandon()
        super().close()


class PutChannel(Request):
    """FILE_PUT of a regular file: DATA on stream 0 within the agent's credit, EOF, then the reply
    (which may come early, with the first error)."""

    def __init__(self, conn: Connection, cid: int):
        super().__init__(conn, cid)
        self.cond = threading.Condition()
        self.credit = P.WINDOW

    def on_frame(self, ftype: int, flags: int, payload: bytes) -> None:
        if ftype == P.CREDIT and flags == 0 and len(payload) == 4:
            with self.cond:
                self.credit += P.get_u32(payload)
                self.cond.notify_all()
        else:
            with self.cond:
                super().on_frame(ftype, flags, payload)
                self.cond.notify_all()

    def on_fail(self, err: AgentError) -> None:
        with self.cond:
            super().on_fail(err)
            self.cond.notify_all()

    def send_data(self, data: bytes | memoryview) -> bool:
        """Send `data` (any size); False if the agent answered (an error) meanwhile."""
        view = memoryview(data).cast("B")
        while view:
            piece = view[:P.DATA_CHUNK]
            with self.cond:
                while self.credit < len(piece) and not self.replied.is_set():
                    if not self.cond.wait(REQUEST_TIMEOUT):
                        raise AgentError(f"the agent took no data for {REQUEST_TIMEOUT:g}s")
                if self.replied.is_set():
                    return False
                self.credit -= len(piece)
            self.conn.send(P.frame(P.DATA, self.id, bytes(piece)))
            view = view[len(piece):]
        return True


def chunks_of(data: Any):
    """The chunks of file data given as bytes, a file object (.read) or an iterable of bytes."""
    if data is None:
        return
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield data
        return
    read = getattr(data, "read", None)
    if read is not None:
        while chunk := read(1 << 20):
            if isinstance(chunk, str):
                raise TypeError("file data must be bytes")
            yield chunk
        return
    for chunk in data:
        if isinstance(chunk, str):
            raise TypeError("file data must be bytes")
        if chunk:
            yield chunk
