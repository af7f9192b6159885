"""Fuzzed request bodies on every POST/PUT/PATCH endpoint and garbage certificates (issue 6, point 5).

Every case must be refused with a 4xx, the daemon must stay up, and no state may change.
"""
from __future__ import annotations

import base64
import json
import random
import re
import socket
import ssl

import pytest

from corral.pki import certs
from corral.api import ENDPOINT_MODULES
from helpers import unique

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
# Endpoints whose body is raw content rather than JSON (a file, a template): garbage is valid there.
RAW_BODY = re.compile(r"/files$|/metadata/templates$")
# Endpoints that take no body at all (LXD ignores it): an image secret or refresh is a POST without one.
NO_BODY = re.compile(r"/secret$|/refresh$")
SKIP = {("PUT", "/internal/shutdown")}


@pytest.fixture(scope="module")
def fz(host):
    name = unique("fz")
    host.lxc("init", "busybox", name)
    host.lxc("snapshot", name, "s0")
    yield name
    host.lxc("delete", "-f", name, check=False)


def _routes(params: dict[str, str]) -> list[tuple[str, str]]:
    out = set()
    for module in ENDPOINT_MODULES:
        for route in module.routes:
            if route.method not in ("POST", "PUT", "PATCH") or (route.method, route.path) in SKIP:
                continue
            if RAW_BODY.search(route.path) or NO_BODY.search(route.path):
                continue
            path = re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: params.get(m.group(1), "nothere"), route.path)
            out.add((route.method, path))
    return sorted(out)


def _state(d) -> dict:
    def get(path):
        r = d.get(path)
        return r.metadata if r.status == 200 else r.status
    insts = get("/1.0/instances?recursion=1&all-projects=true")
    for i in insts:
        i.pop("last_used_at", None)
    images = get("/1.0/images?recursion=1")
    for i in images:
        i.pop("last_used_at", None)
    return {"server": get("/1.0")["config"], "instances": insts, "images": images,
            "aliases": get("/1.0/images/aliases?recursion=1"), "profiles": get("/1.0/profiles?recursion=1"),
            "projects": get("/1.0/projects?recursion=1"), "certificates": get("/1.0/certificates?recursion=1"),
            "pools": get("/1.0/storage-pools?recursion=1"), "networks": [n for n in get("/1.0/networks?recursion=1") if n.get("managed")],
            "snapshots": [get(f"/1.0/instances/{i['name']}/snapshots") for i in insts]}


def _refused(r) -> bool:
    """A 4xx error envelope, or the clear 501 of an endpoint Corral does not implement."""
    if r.status == 501:
        return r.json["error"].startswith("not implemented")
    return 400 <= r.status < 500 and r.json["type"] == "error"


def _bodies(rng: random.Random) -> list[bytes]:
    out = [
        b"\xff\xfe\x80not utf-8 \xc3\x28",
        b'{"name": "\xed\xa0\x80"}',                       # a UTF-16 surrogate in UTF-8: invalid
        b"[" * 100_000 + b"]" * 100_000,                   # deep arrays
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,           # deep objects
        b'{"config": ' + b"[" * 70 + b"]" * 70 + b"}",    # just past the depth limit
        b"{", b"}", b"nul", b'{"name": "x",}', b"\x00\x00\x00",
        b"[]", b'"a string"', b"12345", b"null", b"true",
    ]
    for _ in range(4):
        out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
    return out


# Well-formed objects with wrong types: POST endpoints must refuse them (unknown fields alone are
# ignored, as Go's decoder does in LXD, so PUT/PATCH may legitimately accept some: no state may change).
WRONG_TYPES = [
    b'{"name": 12, "config": "not a map", "devices": [], "source": "x", "profiles": {"a": 1}}',
    b'{"name": {"$ne": null}, "description": ["x"], "restricted": "yes", "projects": "p", "config": 5}',
    b'{"config": {"key with spaces": {"nested": true}}, "name": []}',
    b'{"name": "' + b"x" * 100_000 + b'", "config": []}',
]


def test_fuzzed_bodies_everywhere(host, fz):
    rng = random.Random(6)
    fp = host.get("/1.0/images/aliases/busybox").metadata["target"]
    params = {"name": fz, "snap": "s0", "pool": "default", "type": "custom", "fingerprint": fp,
              "uuid": "nothere", "backup": "nothere"}
    routes = _routes(params)
    assert len(routes) > 40
    bodies = _bodies(rng)
    before = _state(host)
    cases = 0
    bad = []
    for method, path in routes:
        for body in bodies:
            r = host.request(method, path, raw=body, headers={"Content-Type": "application/json"})
            cases += 1
            if not _refused(r):
                bad.append((method, path, body[:60], r.status, r.body[:300]))
        for body in WRONG_TYPES:
            r = host.request(method, path, raw=body, headers={"Content-Type": "application/json"})
            cases += 1
            if not _refused(r):
                bad.append((method, path, body[:60], r.status, r.body[:300]))
    assert not bad, "\n".join(map(str, bad))
    assert cases > 500
    assert host.get("/1.0").status == 200
    assert _state(host) == before


def _send_oversized(d, method: str, path: str, size: int) -> int | None:
    """Send `size` bytes of JSON-ish body; the daemon may answer before reading it all."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(d.socket)
    head = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    try:
        s.sendall(head + b'{"name": "' + b"a" * (size - 12) + b'"}')
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = b""
    try:
        while b"\r\n" not in data and (chunk := s.recv(4096)):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return int(data.split()[1]) if data.startswith(b"HTTP/") else None


def test_oversized_bodies(host):
    before = _state(host)
    for method, path in (("POST", "/1.0/instances"), ("POST", "/1.0/profiles"), ("POST", "/1.0/certificates"),
                         ("POST", "/1.0/projects"), ("PATCH", "/1.0"), ("POST", "/1.0/images")):
        status = _send_oversized(host, method, path, 11 * MiB)
        assert status is not None and 400 <= status < 500, (method, path, status)
    # A body that lies about its size (chunked, no Content-Length) is cut at the limit too.
    s = socket.socket(socket.AF_UNIX)
    s.connect(host.socket)
    s.sendall(b"POST /1.0/profiles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"a" * MiB
    try:
        for _ in range(11):
            s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = s.recv(4096)
    s.close()
    assert data.startswith(b"HTTP/1.1 4"), data[:100]
    assert host.get("/1.0").status == 200
    assert _state(host) == before


def _garbage_certificates(rng: random.Random) -> list:
    crt, _ = certs.generate("fuzz")
    der = ssl.PEM_cert_to_DER_cert(crt.decode())
    flipped = bytearray(der)
    for _ in range(5):
        i = rng.randrange(len(flipped))
        flipped[i] ^= 0xFF
    out = [
        "", "not base64 !!!", "====", base64.b64encode(b"hello").decode(), crt.decode(),
        base64.b64encode(der[: len(der) // 2]).decode(), base64.b64encode(bytes(flipped)).decode(),
        base64.b64encode(der + b"\x00trailing").decode(), "A" * (2 * MiB), 12, [], {"a": 1}, True,
        base64.b64encode(b"\x30\x82\xff\xff" + b"\x00" * 100).decode(),
    ]
    for _ in range(20):
        out.append(base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))).decode())
    return out


def test_garbage_certificates(host):
    rng = random.Random(66)
    before = _state(host)
    cases = 0
    for cert in _garbage_certificates(rng):
        for extra in ({}, {"type": "server"}, {"type": 7}, {"restricted": "yes"}, {"projects": "p"},
                      {"projects": ["nothere"]}, {"name": 5}, {"token": "yes"}):
            body = {"type": "client", "certificate": cert, **extra}
            if cert == "" and not extra:
                continue  # a valid request shape on the unix socket ("Can't use TLS data..." 400 anyway)
            r = host.request("POST", "/1.0/certificates", body)
            cases += 1
            assert 400 <= r.status < 500, (str(cert)[:40], extra, r.status, r.body[:200])
    # Garbage tokens/passwords from an untrusted client over HTTPS.
    port = None
    addr = host.get("/1.0").metadata["config"].get("core.https_address")
    if addr:
        port = int(addr.rsplit(":", 1)[1])
    if port:
        import http.client
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        for pw in ["", "x", base64.b64encode(b'{"secret": 5}').decode(), base64.b64encode(b"[]").decode(),
                   base64.b64encode(json.dumps({"secret": "a" * 64}).encode()).decode(), "\u0000" * 10]:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            conn.request("POST", "/1.0/certificates", body=json.dumps({"password": pw}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 403, (pw, r.status)
            conn.close()
            cases += 1
    assert cases > 200
    assert _state(host) == before
