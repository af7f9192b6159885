"""AgentClient: corrald's blocking, thread-safe API to the agent in a VM (corral/vmagent/), over
the unix socket of QEMU's virtio-serial chardev. It connects lazily; when the link breaks (the VM
stopped, the agent restarted) the next call connects again, and the agent then drops every
session of the previous connection."""
from __future__ import annotations

import json
import os
import threading
from typing import Any, Callable

from corral.instance.agent import protocol as P
from corral.instance.agent.channels import (AgentExecProcess, AgentFile, GetChannel, PutChannel, Request,
                                            chunks_of, simple)
from corral.instance.agent.connection import Connection
from corral.instance.agent.errors import AgentError, AgentNotRunning, file_error
from corral.instance.fileroot import Entry, FileInfo, check_id, check_mode, clean_path

DEFAULT_CONNECT_TIMEOUT = 5.0


class AgentClient:
    def __init__(self, socket_path: str, hostname: str = "", on_stream: Callable | None = None,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT):
        """`on_stream(sock)` is called in a thread of its own with a connected socket for each
        /dev/lxd connection made in the guest (the callee owns it); without it they are refused.
        `connect_timeout`: how long a call that has to connect waits for the agent."""
        self.socket_path = socket_path
        self.hostname = hostname
        self.on_stream = on_stream
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Connection | None = None

    # ---- the connection ----------------------------------------------------------------------

    def connect(self, timeout: float | None = None) -> None:
        """Connect and handshake (HELLO with the instance name: the guest's hostname) unless
        already connected; AgentNotRunning if the agent does not answer within `timeout`."""
        self._connection(self.connect_timeout if timeout is None else timeout)

    def _connection(self, timeout: float | None = None) -> Connection:
        with self._lock:
            if self._conn is not None and self._conn.alive:
                return self._conn
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            conn = Connection(self.socket_path, self.hostname, self.on_stream)
            conn.open(self.connect_timeout if timeout is None else timeout)
            self._conn = conn
            return conn

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.alive

    @property
    def agent_pid(self) -> int | None:
        conn = self._conn
        return conn.agent_pid if conn is not None and conn.alive else None

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether the agent answers (a HELLO, waiting up to `timeout` for it)."""
        try:
            self.connect(timeout)
            return True
        except AgentNotRunning:
            return False

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # ---- exec --------------------------------------------------------------------------------

    def exec(self, command: list[str], env: dict[str, str], cwd: str = "/", uid: int = 0, gid: int = 0,
             interactive: bool = False, width: int = 80, height: int = 24) -> AgentExecProcess:
        """Start `command` in the guest: an ExecProcess (corral.instance.drivers.base) whose fds
        (.pty, or .stdin/.stdout/.stderr) the caller owns and closes."""
        if not command:
            raise AgentError("Command must be a non-empty array of strings", status=400)
        tlv = P.TLV()
        for arg in command:
            tlv.add(P.T_ARG, arg)
        for k, v in env.items():
            tlv.add(P.T_ENV, f"{k}={v}")
        tlv.add(P.T_CWD, cwd or "/").add(P.T_UID, uid).add(P.T_GID, gid).add(P.T_PTY, bool(interactive))
        tlv.add(P.T_WIDTH, width or 80).add(P.T_HEIGHT, height or 24)
        payload = tlv.bytes()
        if len(payload) > P.MAX_TO_AGENT:
            raise AgentError("Command and environment too large for the VM agent", status=400)
        if any("\x00" in s for s in [*command, *env, *env.values(), cwd or ""]):
            raise AgentError("Invalid command or environment: NUL byte", status=400)
        conn = self._connection()
        proc: AgentExecProcess = conn.add_channel(lambda cid: AgentExecProcess(conn, cid, interactive))
        try:
            conn.send(P.frame(P.EXEC, proc.id, payload))
            proc.wait_reply()
        except BaseException:
            self._close_fds(proc.caller_fds())
            conn.call_soon(proc.close_ours)
            raise
        if proc.errno:
            self._close_fds(proc.caller_fds())
            raise AgentError(f"Failed to exec in the VM: {proc.message}", proc.errno,
                             status=400 if proc.errno in (2, 13, 20, 22) else 500)
        return proc

    @staticmethod
    def _close_fds(fds: list[int]) -> None:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    # ---- files -------------------------------------------------------------------------------

    def file_get(self, path: str) -> Entry:
        """A file (Entry.file: a file object to read and close), directory (Entry.entries) or symlink
        (Entry.target) of the guest, with its owner, mode and size (Entry.info)."""
        cpath = clean_path(path)
        conn = self._connection()
        ch: GetChannel = conn.add_channel(lambda cid: GetChannel(conn, cid))
        conn.send(P.frame(P.FILE_GET, ch.id, P.TLV().add(P.T_PATH, cpath).bytes()))
        fields = ch.wait_reply()
        if ch.errno:
            raise file_error(ch.errno, ch.message, cpath, "read")
        kind = P.KIND_NAMES.get(P.tlv_int(fields, P.T_TYPE, 1), "file")
        info = FileInfo(kind, P.tlv_int(fields, P.T_UID, 0), P.tlv_int(fields, P.T_GID, 0),
                        P.tlv_int(fields, P.T_MODE, 0) & 0o7777, P.tlv_int(fields, P.T_SIZE, 0),
                        (P.tlv_int(fields, P.T_MTIME, 0) or 0) / 1e9)
        if kind == "file":
            return Entry(info, file=AgentFile(ch, info.size))
        data = ch.read_all()
        if kind == "directory":
            names = [os.fsdecode(n) for n in data.split(b"\0") if n]
            return Entry(info, entries=sorted(names))
        return Entry(info, target=os.fsdecode(data))

    def file_put(self, path: str, kind: str = "file", data: Any = None, uid: int | None = None,
                 gid: int | None = None, mode: int | str | None = None, append: bool = False) -> None:
        """Write a file (data: bytes, a file object or an iterable of chunks; append needs an
        existing file), make a directory, or a symlink (data: its target, str or bytes).
        uid/gid/mode (None: not given) apply to what is created, as in files.py."""
        cpath = clean_path(path)
        if kind not in P.KINDS:
            raise AgentError(f'Invalid X-LXD-type header "{kind}"', status=400)
        uid, gid, mode = check_id(uid, "uid"), check_id(gid, "gid"), check_mode(mode)
        tlv = P.TLV().add(P.T_PATH, cpath).add(P.T_KIND, P.KINDS[kind]).add(P.T_APPEND, bool(append))
        for tag, value in ((P.T_UID, uid), (P.T_GID, gid), (P.T_MODE, mode)):
            if value is not None:
                tlv.add(tag, value)
        what = {"file": "write", "directory": "create directory", "symlink": "create symlink"}[kind]
        if kind == "symlink":
            target = os.fsencode(data) if isinstance(data, str) else bytes(data or b"")
            if not target or b"\0" in target:
                raise AgentError("Invalid symlink target", status=400)
            tlv.add(P.T_TARGET, target)
        conn = self._connection()
        if kind != "file":
            req = simple(conn, P.FILE_PUT, tlv)
            if req.errno:
                raise file_error(req.errno, req.message, cpath, what)
            return
        ch: PutChannel = conn.add_channel(lambda cid: PutChannel(conn, cid))
        try:
            conn.send(P.frame(P.FILE_PUT, ch.id, tlv.bytes()))
            for chunk in chunks_of(data):
                if not ch.send_data(chunk):
                    break
            else:
                conn.send(P.frame(P.EOF, ch.id))
            ch.wait_reply()
        except BaseException:
            if not ch.replied.is_set():
                conn.send(P.frame(P.CLOSE, ch.id))
            conn.drop_channel(ch.id)
            raise
        conn.drop_channel(ch.id)
        if ch.errno:
            raise file_error(ch.errno, ch.message, cpath, what)

    def file_delete(self, path: str) -> None:
        cpath = clean_path(path)
        req = simple(self._connection(), P.FILE_DELETE, P.TLV().add(P.T_PATH, cpath))
        if req.errno:
            raise file_error(req.errno, req.message, cpath, "delete")

    # ---- state -------------------------------------------------------------------------------

    def state(self) -> dict:
        """{"processes", "memory", "cpu", "disk", "network"} of the guest, in LXD's field names
        (memory also has "total"; disk is keyed by mount point, "/")."""
        req: Request = simple(self._connection(), P.STATE, P.TLV())
        if req.errno:
            raise AgentError(f"Failed to get the VM's state: {req.message}", req.errno)
        try:
            return json.loads(P.tlv_str(req.fields, P.T_JSON))
        except ValueError as e:
            raise AgentError(f"The VM agent sent an invalid state: {e}") from None
