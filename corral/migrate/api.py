"""A small HTTP client over a daemon's unix socket (LXD's or corrald's REST API), for the migration."""
from __future__ import annotations

import http.client
import json
import socket


class ApiError(Exception):
    pass


class _Conn(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Api:
    def __init__(self, socket_path: str, timeout: float = 120):
        self.socket = socket_path
        self.timeout = timeout

    def request(self, method: str, path: str, body=None, timeout: float | None = None) -> dict:
        conn = _Conn(self.socket, timeout or self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
            r = conn.getresponse()
            raw = r.read()
        except OSError as e:
            raise ApiError(f"{method} {path}: {e}") from None
        finally:
            conn.close()
        try:
            doc = json.loads(raw)
        except ValueError:
            raise ApiError(f"{method} {path}: HTTP {r.status}: {raw[:200]!r}") from None
        if doc.get("type") == "error":
            raise ApiError(f"{method} {path}: {doc.get('error')}")
        return doc

    def get(self, path: str):
        return self.request("GET", path)["metadata"]

    def wait(self, doc: dict, timeout: float = 120) -> dict:
        """Wait for the operation a response started; raise its error if it failed."""
        if doc.get("type") != "async":
            return doc.get("metadata") or {}
        op = doc["operation"]
        md = self.request("GET", f"{op}/wait?timeout={int(timeout)}", timeout=timeout + 10)["metadata"]
        if md.get("status") != "Success":
            raise ApiError(f"{op}: {md.get('err') or md.get('status')}")
        return md

    def alive(self) -> bool:
        try:
            self.request("GET", "/1.0", timeout=5)
            return True
        except ApiError:
            return False
