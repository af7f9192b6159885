"""Issue 9, finding 2: a restricted certificate only ever touches its projects.

Real HTTPS clients (a pinned TLS client and the real `lxc`) with a certificate restricted to a project
`restricted=true`: every escalation that reached host root or host-wide objects is refused with a
clear error and changes nothing; the client can still launch, exec, read its exec output and follow
its own operations. A restricted certificate given an unrestricted project gets a warning.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from test_remote import Cert, Https, LxcClient, listen  # noqa: E402

from helpers import unique, wait_for  # noqa: E402

WARNING_TYPE = "Restricted certificate with access to an unrestricted project"


class Rig:
    def __init__(self, host, tmp):
        self.host, self.tmp = host, tmp
        self.port = listen(host)
        self.server_fp = host.get("/1.0").metadata["environment"]["certificate_fingerprint"]
        self.bridge = host.get("/1.0/profiles/default").metadata["devices"]["eth0"]["network"]
        # p1 is restricted (every restricted.* at its blocking default) and uses the default project's images.
        self.p1 = unique("rp")
        r = host.request("POST", "/1.0/projects", {"name": self.p1, "config": {
            "restricted": "true", "features.images": "false"}})
        assert r.status == 201, r.body
        self.cert = Cert(tmp, unique("rcert"))
        r = host.request("POST", "/1.0/certificates", {"type": "client", "certificate": self.cert.b64,
                                                       "name": unique("r1"), "restricted": True,
                                                       "projects": [self.p1]})
        assert r.status == 201, r.body
        self.cli = Https(self.port, self.cert, self.server_fp)
        self.projects = [self.p1]
        self.certs = [self.cert.fingerprint]

    def req(self, method, path, body=None):
        return self.cli.request(method, path, body)

    def wait(self, body, timeout=120):
        status, out = self.req("GET", f"{body['operation']}/wait?timeout={timeout}")
        assert status == 200, out
        return out["metadata"]

    def project(self, **config) -> str:
        name = unique("rq")
        r = self.host.request("POST", "/1.0/projects", {"name": name, "config": config})
        assert r.status == 201, r.body
        self.projects.append(name)
        return name

    def cleanup(self):
        for p in self.projects:
            for i in self.host.get(f"/1.0/instances?project={p}").metadata or []:
                self.host.lxc("delete", "-f", "--project", p, i.rsplit("/", 1)[1].split("?")[0], check=False)
            self.host.request("DELETE", f"/1.0/projects/{p}")
        for fp in self.certs:
            self.host.request("DELETE", f"/1.0/certificates/{fp}")


@pytest.fixture(scope="module")
def rig(host, tmp_path_factory):
    r = Rig(host, str(tmp_path_factory.mktemp("rcerts")))
    try:
        yield r
    finally:
        r.cleanup()


def _root_disk():
    return {"root": {"type": "disk", "path": "/", "pool": "default"}}


def test_raw_lxc_hook_privileged_and_host_disk_are_refused(rig, tmp_path):
    marker = f"/tmp/corral-pwned-{uuid.uuid4().hex}"
    hook = f"lxc.hook.pre-start = /bin/sh -c 'touch {marker}'"
    base = {"name": unique("rx"), "source": {"type": "image", "alias": "busybox"}, "devices": _root_disk()}
    cases = [
        ({"config": {"raw.lxc": hook}}, 'Use of low-level config "raw.lxc" on container'),
        ({"config": {"security.privileged": "true"}}, "Privileged containers are forbidden"),
        ({"config": {"security.nesting": "true"}}, "Container nesting is forbidden"),
        ({"config": {"linux.kernel_modules": "nbd"}}, 'low-level config "linux.kernel_modules"'),
        ({"config": {"raw.idmap": "both 0 0"}}, 'Use of low-level "raw.idmap" element 0'),
        ({"config": {"volatile.idmap.next": '[{"Isuid":true,"Isgid":true,"Hostid":0,"Nsid":0,"Maprange":65536}]'}},
         'Setting "volatile.idmap.next"'),
        ({"config": {"security.privileged": "true"},
          "devices": {**_root_disk(), "host": {"type": "disk", "source": "/", "path": "/mnt/host"}}},
         "Privileged containers are forbidden"),
        ({"devices": {**_root_disk(), "host": {"type": "disk", "source": "/", "path": "/mnt/host"}}},
         "Attaching disks not backed by a pool is forbidden"),
        ({"devices": {**_root_disk(), "p": {"type": "proxy", "listen": "tcp:127.0.0.1:1",
                                            "connect": "unix:/var/lib/corral/unix.socket"}}},
         "Proxy devices are forbidden"),
        ({"devices": {**_root_disk(), "n": {"type": "nic", "nictype": "macvlan", "parent": "lo"}}},
         "Only managed network devices are allowed"),
    ]
    for extra, text in cases:
        body = {**base, **extra}
        status, out = rig.req("POST", f"/1.0/instances?project={rig.p1}", body)
        assert status == 403, (extra, status, out)
        assert text in out["error"], (extra, out["error"])
        if "volatile" not in text:   # LXD words the volatile refusal on its own
            assert out["error"].startswith("Failed checking if instance creation allowed: "), out["error"]
    # Also from the unix socket: project restrictions bind everyone, as in LXD.
    r = rig.host.request("POST", f"/1.0/instances?project={rig.p1}", {**base, "config": {"raw.lxc": hook}})
    assert r.status == 403 and "raw.lxc" in r.json["error"]
    # A profile's raw.lxc reaches its instances: refused on the profile too (PATCH, PUT, POST).
    for method, path, body in [
            ("PATCH", f"/1.0/profiles/default?project={rig.p1}", {"config": {"raw.lxc": hook}}),
            ("PUT", f"/1.0/profiles/default?project={rig.p1}", {"config": {"security.privileged": "true"}}),
            ("POST", f"/1.0/profiles?project={rig.p1}", {"name": unique("pr"), "config": {"raw.lxc": hook}})]:
        status, out = rig.req(method, path, body)
        assert status == 403, (method, path, out)
        assert "Failed checking if profile update allowed" in out["error"]
    assert rig.host.get(f"/1.0/profiles/default?project={rig.p1}").metadata["config"] == {}
    assert rig.host.get(f"/1.0/instances?project={rig.p1}").metadata == []
    assert not os.path.exists(marker)


def test_disk_paths_and_idmap_ranges_when_allowed(rig):
    p = rig.project(**{"restricted": "true", "restricted.devices.disk": "allow",
                       "restricted.devices.disk.paths": "/srv/corral-allowed",
                       "restricted.idmap.uid": "1000000-1000009", "restricted.idmap.gid": "1000000-1000009"})
    base = {"name": unique("rd"), "source": {"type": "none"}, "devices": _root_disk()}
    r = rig.host.request("POST", f"/1.0/instances?project={p}", {**base, "devices": {
        **_root_disk(), "h": {"type": "disk", "source": "/", "path": "/mnt"}}})
    assert r.status == 403 and 'Disk source path "/" not allowed' in r.json["error"], r.body
    r = rig.host.request("POST", f"/1.0/instances?project={p}", {**base, "devices": {
        **_root_disk(), "h": {"type": "disk", "source": "/srv/corral-allowed-not", "path": "/mnt"}}})
    assert r.status == 403, r.body
    r = rig.host.request("POST", f"/1.0/instances?project={p}", {**base, "config": {"raw.idmap": "both 0 0"}})
    assert r.status == 403 and 'raw.idmap" element 0' in r.json["error"], r.body
    # Inside the allowed ranges: accepted.
    r = rig.host.request("POST", f"/1.0/instances?project={p}", {**base, "config": {
        "raw.idmap": "uid 1000001 1000\ngid 1000002-1000003 1000-1001"}, "devices": {
        **_root_disk(), "h": {"type": "disk", "source": "/srv/corral-allowed/x", "path": "/mnt"}}})
    assert r.status == 202, r.body
    assert rig.host.wait_op(r)["status"] == "Success"


def test_network_writes_refused(rig):
    before = rig.host.get(f"/1.0/networks/{rig.bridge}").metadata["config"]
    status, out = rig.req("PATCH", f"/1.0/networks/{rig.bridge}?project={rig.p1}",
                          {"config": {"raw.dnsmasq": "dhcp-script=/tmp/x"}})
    assert status == 403 and "networks" in out["error"], out
    status, out = rig.req("PUT", f"/1.0/networks/{rig.bridge}?project={rig.p1}", {"config": {}})
    assert status == 403
    name = unique("rbr")[:14]
    status, out = rig.req("POST", f"/1.0/networks?project={rig.p1}", {"name": name, "type": "bridge"})
    assert status == 403, out
    status, _ = rig.req("DELETE", f"/1.0/networks/{rig.bridge}?project={rig.p1}")
    assert status == 403
    status, _ = rig.req("POST", f"/1.0/networks/{rig.bridge}?project={rig.p1}", {"name": name})
    assert status == 403
    assert rig.host.get(f"/1.0/networks/{rig.bridge}").metadata["config"] == before
    assert rig.host.get(f"/1.0/networks/{name}").status == 404
    assert subprocess.run(["ip", "link", "show", name], capture_output=True).returncode != 0
    # Reading the networks the project uses (the default project's) is fine.
    status, out = rig.req("GET", f"/1.0/networks?project={rig.p1}")
    assert status == 200 and f"/1.0/networks/{rig.bridge}" in out["metadata"]
    # Projects can't get networks of their own here (features.networks=true): a clear 501.
    r = rig.host.request("POST", "/1.0/projects", {"name": unique("rn"), "config": {"features.networks": "true"}})
    assert r.status == 501 and "features.networks" in r.json["error"]


def test_host_wide_objects_refused(rig, tmp_path):
    h, cli = rig.host, rig.req
    server_before = h.get("/1.0").metadata["config"]
    pools_before = h.get("/1.0/storage-pools?recursion=1").metadata
    other = Cert(str(tmp_path), "other-admin")
    assert h.request("POST", "/1.0/certificates", {"type": "client", "certificate": other.b64,
                                                  "name": "other"}).status == 201
    rig.certs.append(other.fingerprint)
    refused = [
        ("PUT", "/1.0", {"config": {"core.https_address": "0.0.0.0:1"}}),
        ("PATCH", "/1.0", {"config": {"core.trust_password": "x"}}),
        ("POST", "/1.0/storage-pools", {"name": unique("rsp"), "driver": "dir"}),
        ("PUT", "/1.0/storage-pools/default", {"config": {}}),
        ("PATCH", "/1.0/storage-pools/default", {"config": {"source": "/"}}),
        ("DELETE", "/1.0/storage-pools/default", None),
        # An encoded "/" does not make a pool write look like a volume request.
        ("PATCH", f"/1.0/storage-pools/default%2Fvolumes%2Fcustom?project={rig.p1}", {"config": {}}),
        ("PATCH", f"/1.0/networks/{rig.bridge}%2Fx?project={rig.p1}", {"config": {}}),
        ("POST", "/1.0/certificates", {"token": True, "name": "x"}),
        ("POST", "/1.0/certificates", {"certificate": other.b64, "name": "x"}),
        ("PATCH", f"/1.0/certificates/{rig.cert.fingerprint}", {"restricted": False}),
        ("PUT", f"/1.0/certificates/{rig.cert.fingerprint}", {"name": "x", "restricted": False, "projects": []}),
        ("DELETE", f"/1.0/certificates/{other.fingerprint}", None),
        ("GET", f"/1.0/certificates/{other.fingerprint}", None),
        ("PATCH", f"/1.0/projects/{rig.p1}", {"config": {"restricted": "false"}}),
        ("PUT", f"/1.0/projects/{rig.p1}", {"config": {}}),
        ("POST", "/1.0/projects", {"name": unique("rz")}),
        ("DELETE", f"/1.0/projects/{rig.p1}", None),
        ("GET", "/1.0/projects/default", None),
        ("GET", "/1.0/cluster", None),
        ("PUT", "/1.0/cluster", {}),
        ("POST", "/internal/sql", {"query": "SELECT 1", "database": "global"}),
        ("PUT", "/internal/shutdown", None),
        ("GET", "/1.0/instances?all-projects=true", None),
        ("GET", "/1.0/operations?all-projects=true", None),
        ("GET", f"/1.0/instances?project={rig.p1}&all-projects=true", None),
        ("GET", "/1.0/instances", None),
        ("GET", "/1.0/operations", None),
        ("GET", "/1.0/images?project=default", None),
        ("GET", "/1.0/events?project=default", None),
        ("GET", f"/1.0/events?project={rig.p1}&type=logging", None),
        # p1 uses the default project's images: read them, never change them.
        ("POST", f"/1.0/images/aliases?project={rig.p1}", {"name": unique("ra"), "target": "x"}),
        ("DELETE", f"/1.0/images/aliases/busybox?project={rig.p1}", None),
    ]
    for method, path, body in refused:
        status, out = cli(method, path, body)
        assert status == 403, (method, path, status, out)
        assert out["error"].startswith("not authorized"), (method, path, out)
    assert h.get("/1.0").metadata["config"] == server_before
    assert h.get("/1.0/storage-pools?recursion=1").metadata == pools_before
    assert h.get(f"/1.0/projects/{rig.p1}").metadata["config"]["restricted"] == "true"
    assert h.get(f"/1.0/certificates/{rig.cert.fingerprint}").metadata["restricted"] is True
    assert h.get(f"/1.0/certificates/{other.fingerprint}").status == 200
    assert h.get("/1.0/images/aliases/busybox").status == 200
    # What it may read: its own certificate only, its projects only, the pools, the server (no config).
    status, out = cli("GET", "/1.0/certificates")
    assert out["metadata"] == [f"/1.0/certificates/{rig.cert.fingerprint}"]
    assert cli("GET", f"/1.0/certificates/{rig.cert.fingerprint}")[0] == 200
    assert cli("GET", "/1.0/projects")[1]["metadata"] == [f"/1.0/projects/{rig.p1}"]
    assert cli("GET", "/1.0/storage-pools")[0] == 200
    assert cli("GET", "/1.0")[1]["metadata"]["config"] == {}
    assert cli("GET", f"/1.0/images/aliases/busybox?project={rig.p1}")[0] == 200


def test_warnings_at_trust_time_and_of_other_projects(rig, tmp_path):
    h = rig.host
    pu = rig.project()                           # unrestricted
    crt = Cert(str(tmp_path), "to-unrestricted")
    # `lxc config trust add c.crt --restricted --projects pu` (unix socket) -> a warning about pu.
    h.lxc("config", "trust", "add", crt.crt, "--restricted", "--projects", pu, "--name", "ru")
    rig.certs.append(crt.fingerprint)

    def warnings_for(fp):
        return [w for w in h.get("/1.0/warnings?recursion=1").metadata
                if w["entity_url"] == f"/1.0/certificates/{fp}"]
    ws = warnings_for(crt.fingerprint)
    assert len(ws) == 1, ws
    w = ws[0]
    assert w["type"] == WARNING_TYPE and w["project"] == pu and w["severity"] == "high"
    assert "host root" in w["last_message"] and f'"{pu}"' in w["last_message"]
    # The restricted certificate of p1 (restricted=true) got none.
    assert warnings_for(rig.cert.fingerprint) == []
    # PUT on a certificate giving it an unrestricted project: warned then too.
    crt2 = Cert(str(tmp_path), "later-unrestricted")
    assert h.request("POST", "/1.0/certificates", {"certificate": crt2.b64, "name": "r2", "restricted": True,
                                                  "projects": [rig.p1]}).status == 201
    rig.certs.append(crt2.fingerprint)
    assert warnings_for(crt2.fingerprint) == []
    r = h.request("PUT", f"/1.0/certificates/{crt2.fingerprint}",
                  {"name": "r2", "type": "client", "restricted": True, "projects": [rig.p1, pu]})
    assert r.status == 200, r.body
    assert [x["project"] for x in warnings_for(crt2.fingerprint)] == [pu]
    # Unrestricting a project warns for the restricted certificates that use it.
    pq = rig.project(restricted="true")
    crt3 = Cert(str(tmp_path), "project-unrestricted")
    assert h.request("POST", "/1.0/certificates", {"certificate": crt3.b64, "name": "r3", "restricted": True,
                                                  "projects": [pq]}).status == 201
    rig.certs.append(crt3.fingerprint)
    assert warnings_for(crt3.fingerprint) == []
    assert h.request("PATCH", f"/1.0/projects/{pq}", {"config": {"restricted": "false"}}).status == 200
    assert [x["project"] for x in warnings_for(crt3.fingerprint)] == [pq]
    # The p1 client sees none of these warnings (other projects), and is refused them one by one.
    status, out = rig.req("GET", "/1.0/warnings?recursion=1")
    assert status == 200 and all(x["project"] == rig.p1 for x in out["metadata"]), out
    assert rig.req("GET", f"/1.0/warnings/{w['uuid']}")[0] == 403
    assert rig.req("GET", f"/1.0/warnings?project={pu}")[0] == 403
    for method in ("PUT", "PATCH"):
        assert rig.req(method, f"/1.0/warnings/{w['uuid']}", {"status": "acknowledged"})[0] == 403
    assert rig.req("DELETE", f"/1.0/warnings/{w['uuid']}")[0] == 403
    assert h.get(f"/1.0/warnings/{w['uuid']}").metadata["status"] == "new"


def test_project_restriction_refused_while_content_breaks_it(rig):
    p = rig.project()
    name = unique("rn")
    r = rig.host.request("POST", f"/1.0/instances?project={p}", {
        "name": name, "source": {"type": "none"}, "devices": _root_disk(), "config": {"security.nesting": "true"}})
    assert r.status == 202 and rig.host.wait_op(r)["status"] == "Success", r.body
    r = rig.host.request("PATCH", f"/1.0/projects/{p}", {"config": {"restricted": "true"}})
    assert r.status == 403 and 'Conflict detected when changing "restricted"' in r.json["error"], r.body
    assert "Container nesting is forbidden" in r.json["error"]
    assert "restricted" not in rig.host.get(f"/1.0/projects/{p}").metadata["config"]
    # Allowing nesting first makes it possible.
    r = rig.host.request("PATCH", f"/1.0/projects/{p}", {"config": {"restricted": "true",
                                                                     "restricted.containers.nesting": "allow"}})
    assert r.status == 200, r.body
    # Bad restriction values are refused at once.
    r = rig.host.request("PATCH", f"/1.0/projects/{p}", {"config": {"restricted.devices.nic": "sometimes"}})
    assert r.status == 400 and "restricted.devices.nic" in r.json["error"]


def test_restricted_client_launches_execs_reads_its_logs_and_operations(rig):
    cli = rig.req
    p = rig.p1
    # Its own project's profile: a pool-backed root disk and a NIC on the default project's bridge.
    status, out = cli("PATCH", f"/1.0/profiles/default?project={p}", {"devices": {
        **_root_disk(), "eth0": {"type": "nic", "network": rig.bridge, "name": "eth0"}}})
    assert status == 200, out
    name = unique("rl")
    status, out = cli("POST", f"/1.0/instances?project={p}",
                      {"name": name, "source": {"type": "image", "alias": "busybox"}, "start": True})
    assert status == 202, out
    op = rig.wait(out)
    assert op["status"] == "Success", op
    # Its operations: listed in its project, readable one by one.
    status, ops = cli("GET", f"/1.0/operations?project={p}&recursion=1")
    assert status == 200
    assert any(o["id"] == op["id"] for o in ops["metadata"].get("success", [])), ops
    assert cli("GET", f"/1.0/operations/{op['id']}")[0] == 200
    status, out = cli("GET", f"/1.0/instances/{name}?project={p}")
    assert status == 200 and out["metadata"]["status"] == "Running"
    # The bridge it uses is the default project's: its used_by shows this project's users only.
    assert "/1.0/profiles/default" in rig.host.get(f"/1.0/networks/{rig.bridge}").metadata["used_by"]
    status, out = cli("GET", f"/1.0/networks/{rig.bridge}?project={p}")
    assert status == 200 and f"/1.0/instances/{name}?project={p}" in out["metadata"]["used_by"], out
    assert all(u.endswith(f"?project={p}") for u in out["metadata"]["used_by"]), out
    status, out = cli("GET", f"/1.0/storage-pools/default?project={p}")
    assert status == 200 and all(u.endswith(f"?project={p}") for u in out["metadata"]["used_by"]), out
    # Leases of the shared bridge: the other projects' instances are left out.
    other = unique("rdf")
    gw = rig.host.get(f"/1.0/networks/{rig.bridge}").metadata["config"]["ipv4.address"].split("/")[0]
    static_ip = gw.rsplit(".", 1)[0] + ".250"
    r = rig.host.request("POST", "/1.0/instances", {
        "name": other, "source": {"type": "image", "alias": "busybox"}, "start": True, "devices": {
            "eth0": {"type": "nic", "network": rig.bridge, "name": "eth0", "ipv4.address": static_ip}}})
    assert r.status == 202 and rig.host.wait_op(r)["status"] == "Success", r.body
    try:
        assert other in str(rig.host.get(f"/1.0/networks/{rig.bridge}/leases").metadata)
        status, out = cli("GET", f"/1.0/networks/{rig.bridge}/leases?project={p}")
        assert status == 200 and other not in str(out["metadata"]) and static_ip not in str(out["metadata"]), out
        mine = rig.host.get(f"/1.0/instances/{name}?project={p}").metadata["config"]["volatile.eth0.hwaddr"]
        assert all(x["type"] == "gateway" or x["hwaddr"] == mine for x in out["metadata"]), out
    finally:
        rig.host.lxc("delete", "-f", other, check=False)
    # exec with record-output, then the output log it points at.
    status, out = cli("POST", f"/1.0/instances/{name}/exec?project={p}", {
        "command": ["sh", "-c", "echo out-$((6*7)); echo err >&2"], "wait-for-websocket": False,
        "interactive": False, "record-output": True})
    assert status == 202, out
    done = rig.wait(out)
    assert done["status"] == "Success" and done["metadata"]["return"] == 0, done
    outputs = done["metadata"]["output"]
    assert all(u.endswith(f"?project={p}") for u in outputs.values()), outputs
    status, data = cli("GET", outputs["1"])
    assert status == 200 and data == b"out-42\n", data
    assert cli("GET", outputs["2"])[1] == b"err\n"
    status, logs = cli("GET", f"/1.0/instances/{name}/logs?project={p}")
    assert status == 200 and any(u.split("?")[0].endswith(os.path.basename(outputs["1"].split("?")[0]))
                                 for u in logs["metadata"])
    # Snapshots and backups are blocked by the project's defaults (restricted.snapshots/backups=block).
    status, out = cli("POST", f"/1.0/instances/{name}/snapshots?project={p}", {"name": "s0"})
    assert status == 403 and f'Project "{p}" doesn\'t allow for snapshot creation' in out["error"], out
    status, out = cli("POST", f"/1.0/instances/{name}/backups?project={p}", {"name": "b0"})
    assert status == 403 and "doesn't allow for backup creation" in out["error"], out
    # Changing it to something forbidden is refused, leaving it as it was.
    status, out = cli("PATCH", f"/1.0/instances/{name}?project={p}", {"config": {"raw.lxc": "lxc.apparmor.profile=unconfined"}})
    assert status == 403 and "Failed checking if instance update allowed" in out["error"], out
    status, out = cli("PATCH", f"/1.0/instances/{name}?project={p}", {"config": {"volatile.idmap.current": "[]"}})
    assert status == 403 and 'Changing "volatile.idmap.current"' in out["error"], out
    assert "raw.lxc" not in rig.host.get(f"/1.0/instances/{name}?project={p}").metadata["config"]
    # Its own config changes within the rules pass.
    status, out = cli("PATCH", f"/1.0/instances/{name}?project={p}", {"config": {"user.note": "fine"}})
    assert status == 200, out


def test_real_lxc_client_with_restricted_token(rig):
    h = rig.host
    p = rig.project(restricted="true", **{"features.images": "false"})
    assert h.request("PATCH", f"/1.0/profiles/default?project={p}", {"devices": _root_disk()}).status == 200
    out = h.lxc("config", "trust", "add", "--restricted", "--projects", p, "--name", unique("rt")).stdout
    token = out.strip().splitlines()[-1].strip()
    lxc = LxcClient(h)
    name = unique("rlx")
    try:
        lxc.run("remote", "add", "r", token)
        fp = next(c["fingerprint"] for c in h.get("/1.0/certificates?recursion=1").metadata
                  if c["restricted"] and c["projects"] == [p])
        rig.certs.append(fp)
        lxc.run("launch", "r:busybox", f"r:{name}", "--project", p)
        res = lxc.run("exec", f"r:{name}", "--project", p, "--", "sh", "-c", "echo hi-from-$(hostname)")
        assert res.stdout.strip() == f"hi-from-{name}"
        listed = lxc.run("list", "r:", "--project", p, "--format", "csv", "-c", "n").stdout.split()
        assert listed == [name]
        res = lxc.run("config", "set", f"r:{name}", "raw.lxc", "lxc.hook.pre-start=/bin/true", "--project", p,
                      check=False)
        assert res.returncode != 0 and 'Use of low-level config "raw.lxc"' in res.stderr, res.stderr
        res = lxc.run("network", "set", f"r:{rig.bridge}", "raw.dnsmasq", "x", "--project", p, check=False)
        assert res.returncode != 0 and "not authorized" in res.stderr
        res = lxc.run("storage", "create", f"r:{unique('rsp')}", "dir", check=False)
        assert res.returncode != 0 and "not authorized" in res.stderr
        res = lxc.run("project", "set", f"r:{p}", "restricted", "false", check=False)
        assert res.returncode != 0 and "not authorized" in res.stderr
        assert h.get(f"/1.0/projects/{p}").metadata["config"]["restricted"] == "true"
        res = lxc.run("delete", "-f", f"r:{name}", "--project", p)
        wait_for(lambda: h.get(f"/1.0/instances/{name}?project={p}").status == 404, timeout=30)
    finally:
        h.lxc("delete", "-f", "--project", p, name, check=False)
        lxc.cleanup()
