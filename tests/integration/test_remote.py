"""The HTTPS API and trust: the real `lxc` client and pylxd against two corralds (issue 6, points 1-3)."""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from corral.pki import certs
from corral.api import ENDPOINT_MODULES
from helpers import Corrald, free_port, unique, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pw"


def listen(d: Corrald, **extra) -> int:
    port = free_port()
    cfg = {"core.https_address": f"127.0.0.1:{port}", **extra}
    r = d.request("PATCH", "/1.0", {"config": cfg})
    assert r.status == 200, r.body
    return port


class Cert:
    def __init__(self, directory: str, name: str):
        crt, key = certs.generate(name)
        self.crt, self.key = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
        with open(self.crt, "wb") as f:
            f.write(crt)
        with open(self.key, "wb") as f:
            f.write(key)
        self.pem = crt.decode()
        self.fingerprint = certs.fingerprint(crt)
        self.b64 = base64.b64encode(ssl.PEM_cert_to_DER_cert(self.pem)).decode()


class Https:
    """A minimal HTTPS client that pins the server certificate by fingerprint."""

    def __init__(self, port: int, cert: Cert | None, server_fp: str):
        self.port, self.cert, self.server_fp = port, cert, server_fp

    def request(self, method: str, path: str, body=None, raw: bytes | None = None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if self.cert:
            ctx.load_cert_chain(self.cert.crt, self.cert.key)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=60)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        der = conn.sock.getpeercert(binary_form=True)
        assert hashlib.sha256(der).hexdigest() == self.server_fp
        r = conn.getresponse()
        status, payload = r.status, r.read()
        conn.close()
        return status, (json.loads(payload) if payload.startswith(b"{") else payload)


class LxcClient:
    """The real `lxc` client with its own config dir (the user's ~/.config/lxc is never touched)."""

    def __init__(self, local: Corrald):
        self.home = tempfile.mkdtemp(prefix="corral-lxc-home-")
        self.env = dict(local.env, HOME=self.home, LXD_CONF=os.path.join(self.home, "lxc"))

    def run(self, *args: str, check: bool = True, timeout: float = 180):
        res = subprocess.run(["lxc", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"lxc {args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def cleanup(self):
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="module")
def c2():
    d = Corrald()
    try:
        d.start()
        d.run("corrald", "init", "--auto", check=True)
        yield d
    finally:
        d.cleanup()


@pytest.fixture(scope="module")
def net(host, c2):
    """Both daemons on HTTPS; c2 with a trust password."""
    p1 = listen(host)
    p2 = listen(c2, **{"core.trust_password": PASSWORD})
    fp2 = c2.get("/1.0").metadata["environment"]["certificate_fingerprint"]
    yield {"p1": p1, "p2": p2, "fp2": fp2}


@pytest.fixture()
def lxc_clients(host):
    made = []

    def make():
        c = LxcClient(host)
        made.append(c)
        return c
    yield make
    for c in made:
        c.cleanup()


def test_password_is_stored_hashed(c2, net):
    assert c2.get("/1.0").metadata["config"]["core.trust_password"] == "true"
    out = c2.run("corrald", "sql", "global", "SELECT value FROM config WHERE key = 'core.trust_password'",
                 check=True).stdout
    assert PASSWORD not in out
    assert re.search(r"[0-9a-f]{192}", out), out


def test_untrusted_view_and_wrong_password(c2, net, tmp_path):
    anon = Https(net["p2"], Cert(str(tmp_path), "anon"), net["fp2"])
    status, body = anon.request("GET", "/1.0")
    assert status == 200
    assert body["metadata"] == {"api_extensions": body["metadata"]["api_extensions"], "api_status": "stable",
                                "api_version": "1.0", "auth": "untrusted", "public": False,
                                "auth_methods": ["tls"]}
    assert anon.request("GET", "/")[1]["metadata"] == ["/1.0"]
    status, body = anon.request("POST", "/1.0/certificates", {"type": "client", "password": "wrong"})
    assert status == 403 and body["error"] == "not authorized"
    assert anon.request("GET", "/1.0/instances")[0] == 403


def test_lxc_remote_password_token_image_copy_launch_and_revoke(host, c2, net, lxc_clients):
    a = lxc_clients()
    r = a.run("remote", "add", "c2", f"127.0.0.1:{net['p2']}", "--accept-certificate", "--password", PASSWORD)
    assert "Client certificate now trusted by server" in r.stdout
    assert "c2" in a.run("remote", "list").stdout
    a.run("list", "c2:")

    # A token made by `lxc config trust add` (over the unix socket of c2) for a second client.
    out = c2.lxc("config", "trust", "add", "--name", "client-b").stdout
    token = out.strip().splitlines()[-1].strip()
    decoded = json.loads(base64.b64decode(token))
    assert decoded["client_name"] == "client-b" and decoded["fingerprint"] == net["fp2"]
    assert decoded["addresses"] == [f"127.0.0.1:{net['p2']}"] and decoded["secret"]
    b = lxc_clients()
    b.run("remote", "add", "c2", token)
    b.run("list", "c2:")
    # The token was single use.
    c = lxc_clients()
    assert c.run("remote", "add", "c2", token, check=False).returncode != 0

    # An image from one corrald to the other (pull mode: c2 downloads from host with an image secret).
    a.run("image", "copy", "busybox", "c2:", "--copy-aliases")
    assert c2.get("/1.0/images/aliases/busybox").status == 200
    name = unique("rc")
    a.run("launch", "c2:busybox", f"c2:{name}")
    try:
        assert c2.get(f"/1.0/instances/{name}").metadata["status"] == "Running"
        listed = a.run("list", "c2:", "--format", "csv", "-c", "n").stdout.split()
        assert name in listed
    finally:
        a.run("delete", "-f", f"c2:{name}", check=False)

    # Trust list / remove: the removed client is refused from its next request on.
    trust = json.loads(a.run("config", "trust", "list", "c2:", "--format", "json").stdout)
    names = {t["name"]: t["fingerprint"] for t in trust}
    assert "client-b" in names
    a.run("config", "trust", "remove", f"c2:{names['client-b'][:12]}")
    r = b.run("list", "c2:", check=False)
    assert r.returncode != 0 and "not authorized" in r.stderr
    a.run("list", "c2:")


def test_token_revoked_by_deleting_its_operation_and_expiry(c2, net, tmp_path):
    op = c2.request("POST", "/1.0/certificates", {"token": True, "name": "x"}).json["metadata"]
    assert op["class"] == "token" and op["metadata"]["request"]["name"] == "x"
    secret = op["metadata"]["secret"]
    token = base64.b64encode(json.dumps({"client_name": "x", "fingerprint": net["fp2"],
                                         "addresses": [], "secret": secret, "expires_at": ""}).encode()).decode()
    assert c2.request("DELETE", f"/1.0/operations/{op['id']}").status == 200
    cli = Https(net["p2"], Cert(str(tmp_path), "revoked"), net["fp2"])
    assert cli.request("POST", "/1.0/certificates", {"type": "client", "password": token})[0] == 403
    assert cli.request("GET", "/1.0/instances")[0] == 403

    # Expiry (core.remote_token_expiry): an expired token is refused.
    assert c2.request("PATCH", "/1.0", {"config": {"core.remote_token_expiry": "1S"}}).status == 200
    try:
        op = c2.request("POST", "/1.0/certificates", {"token": True, "name": "y"}).json["metadata"]
        assert op["metadata"]["expiresAt"]
        time.sleep(2.1)
        token = base64.b64encode(json.dumps({"secret": op["metadata"]["secret"]}).encode()).decode()
        status, body = cli.request("POST", "/1.0/certificates", {"type": "client", "password": token})
        assert status == 403 and body["error"] == "Token has expired"
        assert cli.request("GET", "/1.0/instances")[0] == 403
        # A fresh token within its lifetime works, once.
        assert c2.request("PATCH", "/1.0", {"config": {"core.remote_token_expiry": "1H"}}).status == 200
        op = c2.request("POST", "/1.0/certificates", {"token": True, "name": "z"}).json["metadata"]
        token = base64.b64encode(json.dumps({"secret": op["metadata"]["secret"]}).encode()).decode()
        assert cli.request("POST", "/1.0/certificates", {"type": "client", "password": token})[0] == 201
        assert cli.request("GET", "/1.0/instances")[0] == 200
        other = Https(net["p2"], Cert(str(tmp_path), "other"), net["fp2"])
        assert other.request("POST", "/1.0/certificates", {"type": "client", "password": token})[0] == 403
    finally:
        c2.request("PATCH", "/1.0", {"config": {"core.remote_token_expiry": ""}})
        for fp in c2.get("/1.0/certificates").metadata:
            if c2.get(fp).metadata["name"] == "z":
                c2.request("DELETE", fp)


def test_pylxd_over_https_with_token(c2, net, tmp_path, monkeypatch):
    import pylxd
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    cert = Cert(str(tmp_path), "pylxd")
    token = c2.lxc("config", "trust", "add", "--name", "pylxd").stdout.strip().splitlines()[-1].strip()
    client = pylxd.Client(endpoint=f"https://127.0.0.1:{net['p2']}", cert=(cert.crt, cert.key), verify=False)
    assert client.trusted is False
    client.authenticate(token)
    assert client.trusted is True
    assert isinstance(client.instances.all(), list)
    assert cert.fingerprint in [c.fingerprint for c in client.certificates.all()]
    # The password works for pylxd as well (a second certificate).
    cert2 = Cert(str(tmp_path), "pylxd2")
    client2 = pylxd.Client(endpoint=f"https://127.0.0.1:{net['p2']}", cert=(cert2.crt, cert2.key), verify=False)
    client2.authenticate(PASSWORD)
    assert client2.trusted
    for fp in (cert.fingerprint, cert2.fingerprint):
        assert c2.request("DELETE", f"/1.0/certificates/{fp}").status == 200
    assert pylxd.Client(endpoint=f"https://127.0.0.1:{net['p2']}", cert=(cert.crt, cert.key),
                        verify=False).trusted is False


def _all_routes():
    out = set()
    for module in ENDPOINT_MODULES:
        for route in module.routes:
            path = re.sub(r"\{([^}:]+)(:[^}]*)?\}", "x", route.path)
            out.add((route.method, path))
    return sorted(out)


UNTRUSTED_OK = {("GET", "/"), ("GET", "/1.0"), ("POST", "/1.0/certificates"), ("GET", "/1.0/images"),
                ("GET", "/1.0/images/aliases"), ("GET", "/1.0/images/aliases/x"), ("GET", "/1.0/images/x"),
                ("GET", "/1.0/images/x/export"), ("GET", "/ui"), ("GET", "/ui/x"),   # the web UI's files
                # the public images over simplestreams (their files only for public images)
                ("GET", "/streams/v1/index.json"), ("GET", "/streams/v1/images.json"),
                ("GET", "/streams/v1/images/x/x"),
                ("POST", "/internal/cluster/accept")}   # a joining server: its token or password decides


def test_untrusted_gets_403_everywhere_else(host, net, tmp_path):
    fp1 = host.get("/1.0").metadata["environment"]["certificate_fingerprint"]
    routes = _all_routes()
    assert len(routes) > 50
    before = host.get("/1.0/instances").metadata
    for cert in (Cert(str(tmp_path), "stranger"), None):
        cli = Https(net["p1"], cert, fp1)
        for method, path in routes:
            status, body = cli.request(method, path, {} if method in ("POST", "PUT", "PATCH") else None)
            if (method, path) in UNTRUSTED_OK:
                assert status != 500, (method, path, body)
                continue
            assert status == 403, (method, path, status, body)
            assert body["error"] == "not authorized"
    assert host.get("/1.0/instances").metadata == before
    # Public images only: busybox is private on host.
    cli = Https(net["p1"], None, fp1)
    assert cli.request("GET", "/1.0/images")[1]["metadata"] == []
    assert cli.request("GET", "/1.0/images/aliases")[1]["metadata"] == []
    fp = host.get("/1.0/images/aliases/busybox").metadata["target"]
    assert cli.request("GET", f"/1.0/images/{fp}")[0] == 404
    assert cli.request("GET", f"/1.0/images/{fp}/export")[0] == 404
    # With an image secret, one download.
    op = host.request("POST", f"/1.0/images/{fp}/secret").json["metadata"]
    secret = op["metadata"]["secret"]
    assert cli.request("GET", f"/1.0/images/{fp}?secret={secret}")[0] == 200
    status, data = cli.request("GET", f"/1.0/images/{fp}/export?secret={secret}")
    assert status == 200 and hashlib.sha256(data).hexdigest() == fp
    assert cli.request("GET", f"/1.0/images/{fp}/export?secret={secret}")[0] == 404


def test_restricted_certificate_sees_only_its_projects(host, net, tmp_path):
    fp1 = host.get("/1.0").metadata["environment"]["certificate_fingerprint"]
    proj = unique("p")
    assert host.request("POST", "/1.0/projects", {"name": proj}).status == 201
    cert = Cert(str(tmp_path), "restricted")
    r = host.request("POST", "/1.0/certificates", {"type": "client", "certificate": cert.b64, "name": "r",
                                                   "restricted": True, "projects": [proj]})
    assert r.status == 201, r.body
    name = unique("dflt")
    host.lxc("init", "busybox", name)
    try:
        cli = Https(net["p1"], cert, fp1)
        assert cli.request("GET", "/1.0")[1]["metadata"]["auth"] == "trusted"
        assert cli.request("GET", "/1.0/instances")[0] == 403
        assert cli.request("GET", "/1.0/instances?project=default")[0] == 403
        assert cli.request("GET", f"/1.0/instances/{name}")[0] == 403
        assert cli.request("GET", "/1.0/instances?all-projects=true")[0] == 403
        status, body = cli.request("GET", f"/1.0/instances?project={proj}")
        assert status == 200 and body["metadata"] == []
        assert cli.request("GET", "/1.0/projects")[1]["metadata"] == [f"/1.0/projects/{proj}"]
        assert cli.request("GET", "/1.0/projects/default")[0] == 403
        assert cli.request("PATCH", "/1.0", {"config": {"user.x": "1"}})[0] == 403
        assert cli.request("POST", "/1.0/certificates", {"token": True})[0] == 403
        snap = host.request("POST", f"/1.0/instances/{name}/snapshots", {"name": "s"})
        assert cli.request("GET", snap.json["operation"])[0] == 403
        host.wait_op(snap)
        # Unrestricting the certificate (PATCH) opens the default project at once.
        fp = cert.fingerprint
        assert host.request("PATCH", f"/1.0/certificates/{fp}", {"restricted": False}).status == 200
        assert name in str(cli.request("GET", "/1.0/instances")[1]["metadata"])
    finally:
        host.lxc("delete", "-f", name, check=False)
        host.request("DELETE", f"/1.0/certificates/{cert.fingerprint}")
        host.request("DELETE", f"/1.0/projects/{proj}")


def test_listener_moves_and_stops_at_runtime(c2, net):
    port = free_port()
    assert c2.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{port}"}}).status == 200
    try:
        assert Https(port, None, net["fp2"]).request("GET", "/")[0] == 200
        with pytest.raises(OSError):
            Https(net["p2"], None, net["fp2"]).request("GET", "/")
        # TLS 1.1 is refused.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection(("127.0.0.1", port)) as s:
                ctx.wrap_socket(s)
    finally:
        assert c2.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{net['p2']}"}}).status == 200
    wait_for(lambda: Https(net["p2"], None, net["fp2"]).request("GET", "/")[0] == 200)


def test_corral_cli_remotes(host, c2, net, tmp_path):
    env = dict(host.env, CORRAL_CONF=str(tmp_path / "conf"))

    def corral(*args, check=True):
        res = subprocess.run([os.path.join(os.path.dirname(os.sys.executable), "corral"), *args], env=env,
                             capture_output=True, text=True, timeout=120)
        if check and res.returncode != 0:
            raise AssertionError(f"corral {args}: {res.stdout}\n{res.stderr}")
        return res

    # Without --accept-certificate and no terminal, the fingerprint is shown and the remote refused.
    r = corral("remote", "add", "c2", f"127.0.0.1:{net['p2']}", "--password", PASSWORD, check=False)
    assert r.returncode != 0 and net["fp2"] in r.stderr
    corral("remote", "add", "c2", f"127.0.0.1:{net['p2']}", "--accept-certificate", "--password", PASSWORD)
    assert os.path.exists(tmp_path / "conf" / "client.crt")
    with open(tmp_path / "conf" / "servercerts" / "c2.crt") as f:
        assert certs.fingerprint(f.read()) == net["fp2"]
    prof = unique("onc2")
    assert c2.request("POST", "/1.0/profiles", {"name": prof, "description": "on c2"}).status == 201
    assert "on c2" in corral("profile", "show", f"c2:{prof}").stdout
    assert corral("profile", "show", prof, check=False).returncode != 0  # not on the local daemon
    corral("list", "c2:")
    c2.request("DELETE", f"/1.0/profiles/{prof}")
    assert "c2" in corral("remote", "list").stdout
    corral("remote", "rename", "c2", "far")
    corral("remote", "switch", "far")
    assert corral("remote", "get-default").stdout.strip() == "far"
    assert corral("remote", "remove", "far", check=False).returncode != 0  # the default can't go
    corral("remote", "switch", "local")
    corral("remote", "remove", "far")
    assert "far" not in corral("remote", "list").stdout
    # A token-based remote.
    token = c2.lxc("config", "trust", "add", "--name", "corral-cli").stdout.strip().splitlines()[-1].strip()
    corral("remote", "add", "c3", token)
    corral("profile", "create", "c3:viaremote")
    try:
        assert c2.get("/1.0/profiles/viaremote").status == 200
        assert host.get("/1.0/profiles/viaremote").status == 404
    finally:
        c2.request("DELETE", "/1.0/profiles/viaremote")
