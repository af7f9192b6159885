"""The /dev/lxd guest API, spoken from inside busybox containers (issue 6, point 4).

busybox's nc cannot use unix sockets, so a tiny static C client (data/devlxd_client.c) is built with the
host's gcc and pushed into the containers.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from helpers import sample, unique

pytestmark = pytest.mark.integration

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def client_binary(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the static /dev/lxd test client")
    out = str(tmp_path_factory.mktemp("devlxd") / "devlxd_client")
    subprocess.run(["gcc", "-static", "-O2", "-o", out, os.path.join(HERE, "data", "devlxd_client.c")],
                   check=True)
    return out


@pytest.fixture(scope="module")
def guests(host, client_binary):
    a, b = unique("dla"), unique("dlb")
    host.lxc("launch", "busybox", a, "-c", "user.foo=bar", "-c", "user.meta-data=hello: world",
             "-c", "cloud-init.user-data=#cloud-config", "-c", "environment.SECRET=not-for-guests")
    host.lxc("launch", "busybox", b, "-c", "user.only-b=b-secret")
    for name in (a, b):
        host.lxc("file", "push", client_binary, f"{name}/bin/devlxd_client", "--mode", "0755")
    yield a, b
    host.lxc("delete", "-f", a, b, check=False)


def call(host, name: str, path: str, *extra: str) -> tuple[int, dict, bytes]:
    res = subprocess.run(["lxc", "exec", name, "--", "devlxd_client", path, *extra], env=host.env,
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    head, _, body = res.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def test_info_and_root(host, guests):
    a, _ = guests
    status, headers, body = call(host, a, "/1.0")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == sample("devlxd-1.0.json")  # container, location "none"
    assert json.loads(call(host, a, "/")[2]) == sample("devlxd-root.json")
    status, _, body = call(host, a, "/1.0/images")
    assert status == 404 and body == b"404 page not found\n"


def test_config_only_user_keys_and_isolation(host, guests):
    a, b = guests
    assert json.loads(call(host, a, "/1.0/config")[2]) == [
        "/1.0/config/cloud-init.user-data", "/1.0/config/user.foo", "/1.0/config/user.meta-data"]
    assert json.loads(call(host, b, "/1.0/config")[2]) == ["/1.0/config/user.only-b"]
    status, headers, body = call(host, a, "/1.0/config/user.foo")
    assert status == 200 and body == b"bar"
    assert call(host, a, "/1.0/config/environment.SECRET")[0] == 403
    assert call(host, a, "/1.0/config/volatile.uuid")[0] == 403
    # One container never reads another's keys: b's key does not exist for a.
    assert call(host, a, "/1.0/config/user.only-b")[0] == 404
    assert call(host, b, "/1.0/config/user.foo")[0] == 404


def test_devices_and_meta_data(host, guests):
    a, _ = guests
    devices = json.loads(call(host, a, "/1.0/devices")[2])
    assert devices["root"]["type"] == "disk" and devices["root"]["path"] == "/"
    status, headers, body = call(host, a, "/1.0/meta-data")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    text = body.decode()
    uuid = host.get(f"/1.0/instances/{a}").metadata["config"]["volatile.uuid"]
    assert text == f"#cloud-config\ninstance-id: {uuid}\nlocal-hostname: {a}\nhello: world"


def test_events_are_this_instance_only(host, guests):
    a, b = guests
    out = {}

    def listen():
        out["res"] = subprocess.run(["lxc", "exec", a, "--", "devlxd_client", "/1.0/events", "ws", "4"],
                                    env=host.env, capture_output=True, timeout=60)
    t = threading.Thread(target=listen)
    t.start()
    time.sleep(1.5)
    host.lxc("config", "set", b, "user.only-b", "changed")
    host.lxc("config", "set", a, "user.foo", "baz")
    host.lxc("config", "device", "add", a, "extra", "none")
    t.join()
    raw = out["res"].stdout
    assert b"101 Switching Protocols" in raw
    assert b'"key": "user.foo", "old_value": "bar", "value": "baz"' in raw.replace(b'":"', b'": "') or \
        b'"key":"user.foo","old_value":"bar","value":"baz"' in raw, raw
    assert b'"action": "added"' in raw or b'"action":"added"' in raw
    assert b"only-b" not in raw
    host.lxc("config", "device", "remove", a, "extra")
    host.lxc("config", "set", a, "user.foo", "bar")


def test_image_export_needs_security_devlxd_images(host, guests):
    a, _ = guests
    fp = host.get("/1.0/images/aliases/busybox").metadata["target"]
    assert call(host, a, f"/1.0/images/{fp}/export")[0] == 403
    host.lxc("config", "set", a, "security.devlxd.images", "true")
    try:
        status, _, body = call(host, a, f"/1.0/images/{fp}/export")
        assert status == 200 and hashlib.sha256(body).hexdigest() == fp
    finally:
        host.lxc("config", "unset", a, "security.devlxd.images")


def test_host_processes_are_refused(host, guests):
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(host.dir, "devlxd", "sock"))
    s.sendall(b"GET /1.0 HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.0 403") or data.startswith(b"HTTP/1.1 403")


def test_security_devlxd_false_removes_the_socket(host, client_binary):
    name = unique("dln")
    host.lxc("launch", "busybox", name, "-c", "security.devlxd=false")
    try:
        res = host.lxc("exec", name, "--", "test", "-e", "/dev/lxd/sock", check=False)
        assert res.returncode == 1
    finally:
        host.lxc("delete", "-f", name, check=False)
