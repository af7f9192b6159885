"""The `cluster:` section of a preseed (corral/preseed.py): LXD 5.0's keys checked, and the
PUT /1.0/cluster body it asks for (cluster_request), with `lxd init`'s handling of
cluster_certificate_path and cluster_token. Texts as LXD 5.0.2's `lxd init --preseed` gave them
where it has them."""
import base64
import json

import pytest

from corral.cluster import tokens
from corral.pki import certs
from corral.preseed import canonical_address, cluster_request, parse_preseed


def doc(cluster: str, extra: str = "") -> dict:
    return parse_preseed(extra + "cluster:\n" + "".join(f"  {line}\n" for line in cluster.strip().splitlines()))


@pytest.fixture(scope="module")
def pem():
    crt, _key = certs.generate("cluster")
    return crt.decode()


def token_for(pem: str, addresses, name="m2", secret="s" * 64) -> str:
    return tokens.token_string({"serverName": name, "fingerprint": certs.fingerprint(pem), "addresses": addresses,
                                "secret": secret, "expiresAt": "2030-01-01T00:00:00Z"})


# ---- parsing --------------------------------------------------------------------------------------

def test_unknown_keys_are_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown key\(s\) in cluster: foo \(known: server_name, enabled"):
        doc("foo: bar")
    with pytest.raises(ValueError, match=r"unknown key\(s\) in cluster.member_config\[0\]: bogus"):
        doc("member_config:\n- entity: storage-pool\n  bogus: 1")
    with pytest.raises(ValueError, match="unknown section"):
        parse_preseed("clusters: {}\n")


def test_types_are_lxds():
    with pytest.raises(ValueError, match=r"`cluster.enabled` must be true or false"):
        doc("enabled: maybe")
    with pytest.raises(ValueError, match=r"`cluster.server_name` must be a string"):
        doc("server_name: [1]")
    with pytest.raises(ValueError, match=r"`cluster.member_config` must be a list"):
        doc("member_config: {a: b}")
    with pytest.raises(ValueError, match=r"`cluster` must be a mapping"):
        parse_preseed("cluster: [1]\n")
    d = doc("server_name: 7\nenabled: yes\nmember_config:\n- {entity: storage-pool, name: p, key: size, value: 10}")
    assert d["cluster"] == {"server_name": "7", "enabled": True, "member_config": [
        {"entity": "storage-pool", "name": "p", "key": "size", "value": "10", "description": ""}]}


def test_empty_or_disabled_section_asks_nothing():
    assert cluster_request(parse_preseed("cluster: {}\n")) is None
    assert cluster_request(parse_preseed("cluster:\n")) is None
    assert cluster_request(parse_preseed("config: {}\n")) is None
    assert cluster_request(doc("enabled: false")) is None
    with pytest.raises(ValueError, match="^ServerName must be empty when disabling clustering$"):
        cluster_request(doc("server_name: a\nenabled: false"))


# ---- bootstrap ------------------------------------------------------------------------------------

def test_bootstrap_request_and_address_fallback():
    d = doc("server_name: m1\nenabled: true", "config:\n  core.https_address: 10.0.0.1:8443\n")
    assert cluster_request(d) == {"server_name": "m1", "enabled": True, "member_config": [], "cluster_address": "",
                                  "cluster_certificate": "", "server_address": "", "cluster_password": ""}
    # as lxd init: no cluster.https_address given, core.https_address is the cluster's
    assert d["config"] == {"core.https_address": "10.0.0.1:8443", "cluster.https_address": "10.0.0.1:8443"}
    d = doc("server_name: m1\nenabled: true",
            "config:\n  core.https_address: 10.0.0.1:8443\n  cluster.https_address: 10.0.0.1:9443\n")
    assert d["config"]["cluster.https_address"] == "10.0.0.1:9443"
    with pytest.raises(ValueError, match="^ServerName is required when enabling clustering$"):
        cluster_request(doc("enabled: true"))


# ---- join -----------------------------------------------------------------------------------------

def test_join_with_certificate_path(tmp_path, pem):
    path = tmp_path / "cluster.crt"
    path.write_text(pem)
    d = doc(f"server_name: m2\nenabled: true\ncluster_address: 10.0.0.1\nserver_address: '::1'\n"
            f"cluster_certificate_path: {path}\ncluster_password: sekret\n"
            f"member_config:\n- {{entity: storage-pool, name: default, key: source, value: /srv}}",
            "config:\n  core.https_address: 10.0.0.2:8443\n")
    assert cluster_request(d) == {
        "server_name": "m2", "enabled": True, "cluster_address": "10.0.0.1:8443", "server_address": "[::1]:8443",
        "cluster_certificate": pem, "cluster_password": "sekret",
        "member_config": [{"entity": "storage-pool", "name": "default", "key": "source", "value": "/srv",
                           "description": ""}]}
    assert "cluster.https_address" not in d["config"]   # a join sends only the cluster request


def test_join_needs_addresses_and_certificate(tmp_path, pem):
    with pytest.raises(ValueError, match="^No server address provided for this member$"):
        cluster_request(doc("server_name: m2\nenabled: true\ncluster_address: 10.0.0.1\ncluster_certificate: x"))
    with pytest.raises(ValueError, match="^No target cluster member certificate provided$"):
        cluster_request(doc("server_name: m2\nenabled: true\ncluster_address: 10.0.0.1\nserver_address: 10.0.0.2"))
    with pytest.raises(ValueError, match="joining a cluster needs `cluster_address`"):
        cluster_request(doc("server_name: m2\nenabled: true\nserver_address: 10.0.0.2\ncluster_password: pw"))
    with pytest.raises(ValueError, match="joining a cluster needs `enabled: true`"):
        cluster_request(doc("cluster_address: 10.0.0.1\nserver_address: 10.0.0.2\ncluster_certificate: x"))


def test_unreadable_certificate_path(tmp_path):
    missing = tmp_path / "nope.crt"
    with pytest.raises(ValueError, match=f"^Path {missing} doesn't exist$"):
        cluster_request(doc(f"server_name: m2\nenabled: true\ncluster_certificate_path: {missing}"))
    with pytest.raises(ValueError, match=f"^read {tmp_path}: is a directory$"):
        cluster_request(doc(f"server_name: m2\nenabled: true\ncluster_certificate_path: {tmp_path}"))


def test_canonical_addresses():
    assert canonical_address("10.0.0.1") == "10.0.0.1:8443"
    assert canonical_address("10.0.0.1:9443") == "10.0.0.1:9443"
    assert canonical_address("fd00:0::1") == "[fd00::1]:8443"
    assert canonical_address("[fd00::1]:9443") == "[fd00::1]:9443"
    assert canonical_address("host.example") == "host.example:8443"


# ---- join tokens ----------------------------------------------------------------------------------

def test_token_fills_name_address_and_certificate(pem):
    tok = token_for(pem, ["10.0.0.9:8443", "10.0.0.1"])
    asked = []

    def fetch(address):
        asked.append(address)
        if address == "10.0.0.9:8443":
            raise ConnectionRefusedError("connection refused")
        return pem
    d = doc(f"enabled: true\nserver_name: ignored\nserver_address: 10.0.0.2:8443\ncluster_token: {tok}")
    body = cluster_request(d, fetch)
    assert asked == ["10.0.0.9:8443", "10.0.0.1:8443"]
    assert (body["server_name"], body["cluster_address"], body["cluster_certificate"], body["cluster_password"]) == \
        ("m2", "10.0.0.1:8443", pem, tok)   # the raw token is the password, as lxd init sends it


def test_token_errors(pem):
    def req(token, fetch=lambda a: pem):
        return cluster_request(doc(f"enabled: true\nserver_address: 10.0.0.2\ncluster_token: '{token}'"), fetch)
    with pytest.raises(ValueError, match="^Invalid cluster join token: illegal base64 data at input byte 9$"):
        req("notbase64!!")
    with pytest.raises(ValueError, match="^Invalid cluster join token: No server name in join token$"):
        req(base64.b64encode(json.dumps({"a": 1}).encode()).decode())
    with pytest.raises(ValueError, match="^Invalid cluster join token: No cluster member addresses in join token$"):
        req(token_for(pem, []))
    other, _ = certs.generate("other")
    with pytest.raises(ValueError, match='^Certificate fingerprint mismatch between join token and cluster member '
                                         '"10.0.0.1:8443"$'):
        req(token_for(pem, ["10.0.0.1"]), lambda a: other.decode())

    def down(address):
        raise TimeoutError("timed out")
    with pytest.raises(ValueError, match="^Unable to connect to any of the cluster members specified in join token\n"
                                         'Error connecting to existing cluster member "10.0.0.1:8443": timed out$'):
        req(token_for(pem, ["10.0.0.1"]), down)
    with pytest.raises(ValueError, match="needs the cluster's certificate"):
        req(token_for(pem, ["10.0.0.1"]), None)


def test_whole_document_keeps_other_sections():
    text = ("config:\n  core.https_address: 10.0.0.1:8443\nstorage_pools:\n- {name: default, driver: dir}\n"
            "cluster:\n  server_name: m1\n  enabled: true\n")
    d = parse_preseed(text)
    assert d["storage_pools"] == [{"name": "default", "driver": "dir"}]
    assert cluster_request(d)["server_name"] == "m1"


def test_remote_certificate_is_what_the_server_presents(tmp_path):
    """The fetcher for `corrald init` with a token: a TLS server on loopback, its certificate."""
    import socket
    import ssl
    import threading

    from corral.preseed import remote_certificate
    crt, key = certs.generate("member")
    (tmp_path / "c.pem").write_bytes(crt)
    (tmp_path / "k.pem").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve():
        conn, _ = srv.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        got = remote_certificate(f"127.0.0.1:{port}", timeout=5)
    finally:
        t.join(5)
        srv.close()
    assert certs.fingerprint(got) == certs.fingerprint(crt)
