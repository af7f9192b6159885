"""A small synchronous client for LXD's REST API (corrald's or LXD's) over a unix socket or HTTPS
(stdlib only), plus websocket helpers (aiohttp) for events, exec and console. Used by the `corral`
CLI and by corrald's lxd-style subcommands."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.parse
from typing import Any, BinaryIO, Callable, Iterator


DEFAULT_SOCKET = "/var/lib/corral/unix.socket"


class ClientError(Exception):
    """An error reported by the server (or while talking to it)."""

    def __init__(self, message: str, status_code: int = 0, response: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.response = response

    def __str__(self) -> str:
        return self.message


def default_socket_path() -> str:
    path = os.environ.get("CORRAL_SOCKET")
    if path:
        return path
    base = os.environ.get("CORRAL_DIR")
    if base:
        return os.path.join(base, "unix.socket")
    return DEFAULT_SOCKET


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTPConnection over an AF_UNIX stream socket."""

    def __init__(self, socket_path: str, timeout: float | None = None):
        super().__init__("unix.socket", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class RawResponse:
    """A streaming HTTP response (body not yet read); close() when done."""

    def __init__(self, conn: UnixHTTPConnection, resp: http.client.HTTPResponse):
        self._conn = conn
        self.response = resp
        self.status = resp.status
        self.headers = resp.headers

    def read(self, amt: int | None = None) -> bytes:
        return self.response.read(amt)

    def iter_chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        while True:
            chunk = self.response.read(size)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self.response.close()
        self._conn.close()

    def __enter__(self) -> "RawResponse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _op_path(op: str | dict) -> str:
    """Operation URL (or id, or operation object) -> '/1.0/operations/ID'."""
    if isinstance(op, dict):
        op = op.get("id") or ""
    op = str(op)
    path = urllib.parse.urlsplit(op).path if "://" in op or "?" in op else op
    if not path.startswith("/"):
        path = "/1.0/operations/" + path
    return path


class Client:
    def __init__(
        self,
        socket_path: str | None = None,
        project: str | None = None,
        timeout: float | None = None,
        https: Any = None,   # an HTTPS target (the CLI's remote.HttpsTarget: url, certificates)
    ):
        # https: a remote reached over HTTPS (corral/cli/remote.py) instead of the unix socket.
        self.https = https
        self.socket_path = socket_path or default_socket_path()
        self.project = project or None
        self.timeout = timeout
        self.last_etag: str | None = None
        self._server: dict | None = None

    # ------------------------------------------------------------------ urls

    def url(self, path: str, params: dict | None = None) -> str:
        """Absolute request path with query parameters and ?project= appended."""
        if not path.startswith("/"):
            path = "/" + path
        split = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        for key, value in (params or {}).items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            query.append((key, str(value)))
        if self.project and not any(k == "project" for k, _ in query):
            query.append(("project", self.project))
        qs = urllib.parse.urlencode(query, safe="/:,")
        return split.path + ("?" + qs if qs else "")

    # --------------------------------------------------------------- requests

    def _connect_error(self, method: str, url: str, exc: OSError) -> ClientError:
        verb = method[:1] + method[1:].lower()
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError):
            reason = "no such file or directory"
        elif isinstance(exc, ConnectionRefusedError):
            reason = "connection refused"
        elif isinstance(exc, PermissionError):
            reason = "permission denied"
        return ClientError(
            f'{verb} "http://unix.socket{url}": dial unix {self.socket_path}: connect: {reason.lower()}'
        )

    def raw(
        self,
        method: str,
        path: str,
        body: bytes | BinaryIO | None = None,
        headers: dict | None = None,
        params: dict | None = None,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send a request and return the un-read response."""
        url = self.url(path, params)
        if self.https is not None:
            conn = self.https.connection(timeout if timeout is not None else self.timeout)
        else:
            conn = UnixHTTPConnection(self.socket_path, timeout=timeout if timeout is not None else self.timeout)
        hdrs = {"User-Agent": "Corral", "Host": self.https.host if self.https is not None else "unix.socket"}
        hdrs.update(headers or {})
        try:
            conn.request(method, url, body=body, headers=hdrs)
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            if self.https is None and isinstance(exc, (FileNotFoundError, ConnectionRefusedError, PermissionError)):
                raise self._connect_error(method, url, exc) from None
            raise ClientError(f"{method} {url}: {exc}") from None
        return RawResponse(conn, resp)

    @staticmethod
    def parse_envelope(status: int, payload: bytes) -> dict:
        try:
            env = json.loads(payload.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            env = None
        if not isinstance(env, dict) or "type" not in env:
            if status >= 400:
                text = payload.decode("utf-8", "replace").strip()
                raise ClientError(text or http.client.responses.get(status, f"HTTP {status}"), status)
            raise ClientError("Failed to parse the server's response", status)
        if env.get("type") == "error":
            raise ClientError(env.get("error") or "Unknown error", env.get("error_code") or status, env)
        return env

    def request(
        self,
        method: str,
        path: str,
        data: Any = None,
        headers: dict | None = None,
        params: dict | None = None,
        etag: str | None = None,
        body: bytes | BinaryIO | None = None,
        timeout: float | None = None,
    ) -> dict:
        """Send a request and return the LXD response envelope (a dict).

        Raises ClientError with the envelope's ``error`` on an error response."""
        hdrs = dict(headers or {})
        if body is None and data is not None:
            body = json.dumps(data).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if etag:
            hdrs["If-Match"] = etag
        with self.raw(method, path, body=body, headers=hdrs, params=params, timeout=timeout) as resp:
            payload = resp.read()
            self.last_etag = resp.headers.get("ETag")
            return self.parse_envelope(resp.status, payload)

    def get(self, path: str, **kw: Any) -> dict:
        return self.request("GET", path, **kw)

    def post(self, path: str, data: Any = None, **kw: Any) -> dict:
        return self.request("POST", path, data=data, **kw)

    def put(self, path: str, data: Any = None, **kw: Any) -> dict:
        return self.request("PUT", path, data=data, **kw)

    def patch(self, path: str, data: Any = None, **kw: Any) -> dict:
        return self.request("PATCH", path, data=data, **kw)

    def delete(self, path: str, **kw: Any) -> dict:
        return self.request("DELETE", path, **kw)

    # ------------------------------------------------------------ shortcuts

    def metadata(self, path: str, **kw: Any) -> Any:
        """GET and return only the metadata."""
        return self.get(path, **kw).get("metadata")

    def get_etag(self, path: str, **kw: Any) -> tuple[Any, str | None]:
        env = self.get(path, **kw)
        return env.get("metadata"), self.last_etag

    def server(self, refresh: bool = False) -> dict:
        if self._server is None or refresh:
            self._server = self.metadata("/1.0") or {}
        return self._server

    def has_extension(self, name: str) -> bool:
        return name in (self.server().get("api_extensions") or [])

    def is_clustered(self) -> bool:
        return bool((self.server().get("environment") or {}).get("server_clustered"))

    # ----------------------------------------------------------- operations

    def run(self, method: str, path: str, data: Any = None, wait: bool = True, **kw: Any) -> dict:
        """Send a request; if it created an operation, wait for it.  Returns
        the finished operation (or the sync metadata)."""
        env = self.request(method, path, data=data, **kw)
        if env.get("type") == "async" and wait:
            return self.wait_operation(env.get("operation") or env.get("metadata", {}).get("id"))
        return env.get("metadata")

    def wait_operation(
        self,
        op: str | dict,
        timeout: float = -1,
        progress: Callable[[dict], None] | None = None,
    ) -> dict:
        """Wait for an operation to finish (GET .../wait); return it.

        Raises ClientError with the operation's ``err`` if it failed.  With a
        ``progress`` callback, polls once a second and reports each state."""
        path = _op_path(op)
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        while True:
            step = -1
            if progress is not None:
                step = 1
            if deadline is not None:
                left = max(0, deadline - time.monotonic())
                step = min(step, left) if step >= 0 else left
            params = {"timeout": int(step) if step == int(step) else step} if step >= 0 else None
            meta = self.get(path + "/wait", params=params, timeout=None).get("metadata") or {}
            status = meta.get("status")
            if status in ("Success", "Failure", "Cancelled"):
                break
            if progress is not None:
                progress(meta)
            if deadline is not None and time.monotonic() >= deadline:
                return meta
        if status == "Failure" or status == "Cancelled":
            raise ClientError(meta.get("err") or status, meta.get("status_code") or 400, meta)
        return meta

    # ----------------------------------------------------------- websockets

    def ws_url(self, path: str, params: dict | None = None) -> str:
        if self.https is not None:
            return self.https.url + self.url(path, params)
        return "http://unix.socket" + self.url(path, params)

    def ws_session(self):
        """An aiohttp ClientSession bound to the unix socket (use in a coroutine)."""
        import aiohttp

        if self.https is not None:
            connector = aiohttp.TCPConnector(ssl=self.https.ssl_context())
        else:
            connector = aiohttp.UnixConnector(path=self.socket_path)
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))

    async def ws_connect(self, session: Any, path: str, params: dict | None = None):
        import aiohttp

        url = self.ws_url(path, params)
        try:
            return await session.ws_connect(url, max_msg_size=0, autoping=True, heartbeat=None)
        except aiohttp.WSServerHandshakeError as exc:
            raise ClientError(exc.message or f"websocket handshake failed ({exc.status})", exc.status) from None
        except aiohttp.ClientConnectorError as exc:
            if self.https is not None:
                raise ClientError(f"{url}: {exc}") from None
            raise self._connect_error("GET", self.url(path, params), exc.os_error) from None

    def operation_websocket(self, op_id: str, secret: str) -> str:
        return f"/1.0/operations/{op_id}/websocket?secret={urllib.parse.quote(secret)}"
