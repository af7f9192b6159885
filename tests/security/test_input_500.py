"""Issue 9, finding 6: input that gave 500s. A lone surrogate ("x\\udfff") was stored and then broke
`lxc list` for everyone; a 5,000-digit integer gave a 500. Such input is a 400 at the door, in JSON
bodies (keys and values), URLs (path and query) and headers."""
import socket
from urllib.parse import quote

import pytest

from helpers import unique


@pytest.fixture(scope="module")
def inst(host):
    name = unique("in6")
    host.lxc("init", "busybox", name)
    yield name
    host.lxc("delete", "-f", name, check=False)


BAD_BODIES = {
    "lone surrogate in a value": b'{"description": "x\\udfff"}',
    "lone high surrogate": b'{"description": "\\ud800 trailing"}',
    "lone surrogate in a config value": b'{"config": {"user.a": "\\udc80"}}',
    "lone surrogate in a key": b'{"config": {"user.\\udfff": "a"}}',
    "lone surrogate nested": b'{"devices": {"d": {"type": "none", "x": ["\\udfff"]}}}',
    "5000-digit integer": b'{"config": {"user.a": ' + b"9" * 5000 + b"}}",
    "integer past 64 bits": b'{"config": {"user.a": 18446744073709551616}}',
    "negative integer past 64 bits": b'{"config": {"user.a": -9223372036854775809}}',
    "NaN": b'{"config": {"user.a": NaN}}',
    "Infinity": b'{"config": {"user.a": Infinity}}',
    "-Infinity": b'{"config": {"user.a": -Infinity}}',
    "float overflow": b'{"config": {"user.a": 1e999}}',
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_json_is_400_and_stores_nothing(host, inst, case):
    before = host.get(f"/1.0/instances/{inst}").body
    for method in ("PATCH", "PUT"):
        r = host.request(method, f"/1.0/instances/{inst}", raw=BAD_BODIES[case],
                         headers={"Content-Type": "application/json"})
        assert r.status == 400, (method, r.status, r.body)
        assert r.json["error"].startswith("Invalid JSON"), r.body
    r = host.request("POST", "/1.0/profiles", raw=BAD_BODIES[case].replace(b"{", b'{"name": "%s", ' % unique("p").encode(), 1),
                     headers={"Content-Type": "application/json"})
    assert r.status == 400, r.body
    assert host.get(f"/1.0/instances/{inst}").body == before
    assert host.get("/1.0/instances?recursion=2").status == 200
    assert host.lxc("list").returncode == 0


def test_valid_unicode_and_64_bit_numbers_still_accepted(host, inst):
    body = '{"description": "caf\\u00e9 \\ud83d\\ude00", "config": {"user.max": 18446744073709551615, ' \
           '"user.min": -9223372036854775808, "user.f": 1.5e300}}'
    r = host.request("PATCH", f"/1.0/instances/{inst}", raw=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status == 200, r.body
    got = host.get(f"/1.0/instances/{inst}").metadata
    assert got["description"] == "caf\u00e9 \U0001F600"
    assert got["config"]["user.max"] == "18446744073709551615"
    assert got["config"]["user.min"] == "-9223372036854775808"
    assert host.lxc("list").returncode == 0


@pytest.mark.parametrize("path", [
    "/1.0/instances/x%ED%BF%BF", "/1.0/profiles/%ED%A0%80", "/1.0/instances?project=%ED%BF%BF",
    "/1.0/instances?recursion=1&filter=name%20eq%20%FF", "/1.0/images/aliases/%C0%AF", "/1.0/profiles/%FF%FE",
])
def test_urls_that_are_not_utf8_are_400(host, path):
    r = host.get(path)
    assert r.status == 400, (path, r.status, r.body)
    assert "not valid UTF-8" in r.json["error"]


def test_url_encoded_utf8_names_still_work(host):
    name = unique("pr") + "-\u00e9"
    assert host.request("POST", "/1.0/profiles", {"name": name}).status in (200, 201)
    try:
        assert host.get(f"/1.0/profiles/{quote(name)}").metadata["name"] == name
    finally:
        host.request("DELETE", f"/1.0/profiles/{quote(name)}")


def _raw_request(host, head: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(host.socket)
    s.sendall(head)
    out = b""
    while b"\r\n\r\n" not in out:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_header_with_invalid_utf8_is_400(host, inst):
    """Headers that reach storage (file push owner/mode, image upload properties) must decode."""
    data = b"hello"
    head = (f"POST /1.0/instances/{inst}/files?path=/root/h6 HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n").encode()
    resp = _raw_request(host, head + b"X-LXD-type: file\xed\xbf\xbf\r\n\r\n" + data)
    assert resp.startswith(b"HTTP/1.1 400"), resp[:300]
    assert b"not valid UTF-8" in resp
    resp = _raw_request(host, b"POST /1.0/images HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                              b"X-LXD-properties: os=\xff\xfe\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400"), resp[:300]
    # Percent-encoded in the header itself: the property text must be UTF-8 too, its key a key name.
    for props in (b"os=%ED%BF%BF", b"bad%0Akey=1"):
        resp = _raw_request(host, b"POST /1.0/images HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                                  b"Content-Type: application/octet-stream\r\nX-LXD-properties: " + props +
                            b"\r\n\r\nabcd")
        assert resp.startswith(b"HTTP/1.1 400"), (props, resp[:300])
