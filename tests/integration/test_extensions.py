"""Every API extension corrald advertises is exercised here (the list: corral/api/extensions.py)."""
import asyncio
import contextlib
import json
import shutil

import pytest

from corral.api.extensions import EXTENSIONS
from ext_cluster_checks import *  # noqa: F401,F403 - the clustering extensions' check_* functions
from ext_cluster_checks import close_pair
from ext_cluster_groups_checks import check_clustering_groups  # noqa: F401 - clustering_groups
from ext_metrics_checks import *  # noqa: F401,F403 - the metrics extensions' check_* functions
from helpers import free_port, unique, wait_for

pytestmark = pytest.mark.integration


def ws_messages(d, path: str, trigger, count: int = 1) -> list[dict]:
    """Open a websocket on the unix socket, run trigger(), collect `count` JSON messages."""
    import aiohttp

    async def go():
        conn = aiohttp.UnixConnector(path=d.socket)
        async with aiohttp.ClientSession(connector=conn) as s:
            async with s.ws_connect(f"http://localhost{path}") as ws:
                await asyncio.sleep(0.1)
                await asyncio.to_thread(trigger)
                return [json.loads((await ws.receive(timeout=10)).data) for _ in range(count)]
    return asyncio.run(go())


@pytest.fixture(scope="module")
def ctx(host):
    name = unique("ext")
    host.lxc("launch", "busybox", name)
    yield host, name
    host.lxc("delete", "-f", name, check=False)


@pytest.fixture(scope="module", autouse=True)
def _cluster_pair():
    yield
    close_pair()


def op(d, resp):
    assert resp.status == 202, resp.body
    return d.wait_op(resp)


def _lifecycle_event(d):
    name = unique("ev")
    ev = ws_messages(d, "/1.0/events?type=lifecycle", lambda: d.request("POST", "/1.0/profiles", {"name": name}))[0]
    d.request("DELETE", f"/1.0/profiles/{name}")
    return ev


def check_etag(d, c):
    assert d.get(f"/1.0/instances/{c}").headers.get("ETag")


def check_patch(d, c):
    assert d.request("PATCH", f"/1.0/instances/{c}", {"config": {"user.p": "1"}}).status == 200
    assert d.get(f"/1.0/instances/{c}").metadata["config"]["user.p"] == "1"


def check_profile_usedby(d, c):
    assert f"/1.0/instances/{c}" in d.get("/1.0/profiles/default").metadata["used_by"]


def check_entity_description(d, c):
    assert "description" in d.get(f"/1.0/instances/{c}").metadata


def check_operation_description(d, c):
    r = d.request("POST", f"/1.0/instances/{c}/snapshots", {"name": unique("s")})
    assert r.json["metadata"]["description"] == "Snapshotting instance"
    d.wait_op(r)


def check_operation_location(d, c):
    r = d.request("POST", f"/1.0/instances/{c}/snapshots", {"name": unique("s")})
    assert r.json["metadata"]["location"] == "none"
    d.wait_op(r)


def check_event_lifecycle(d, c):
    assert _lifecycle_event(d)["metadata"]["action"] == "profile-created"


def check_event_lifecycle_requestor_address(d, c):
    assert _lifecycle_event(d)["metadata"]["requestor"]["address"] == "@"


def check_event_location(d, c):
    assert _lifecycle_event(d)["location"] == "none"


def check_event_project(d, c):
    assert _lifecycle_event(d)["project"] == "default"


def check_resources(d, c):
    assert d.get("/1.0/resources").metadata["memory"]["total"] > 0


def check_resources_cpu_socket(d, c):
    assert d.get("/1.0/resources").metadata["cpu"]["sockets"]


def check_resources_system(d, c):
    assert "system" in d.get("/1.0/resources").metadata


def check_projects(d, c):
    assert f"/1.0/instances/{c}" in d.get("/1.0/projects/default").metadata["used_by"]


def check_warnings(d, c):
    assert isinstance(d.get("/1.0/warnings?recursion=1").metadata, list)


def check_api_os(d, c):
    assert d.get("/1.0").metadata["environment"]["os_name"]


def check_server_supported_storage_drivers(d, c):
    env = d.get("/1.0").metadata["environment"]
    names = {x["Name"] for x in env["storage_supported_drivers"]}
    assert {"dir", "btrfs"} <= names and env["storage"] == "dir"


def check_storage(d, c):
    assert d.get("/1.0/storage-pools/default").metadata["driver"] == "dir"


def check_instances(d, c):
    assert f"/1.0/instances/{c}" in d.get("/1.0/instances").metadata


def check_container_full(d, c):
    full = d.get("/1.0/instances?recursion=2").metadata
    assert any(i["name"] == c and i["state"]["status"] == "Running" for i in full)


def check_api_filtering(d, c):
    got = d.get(f"/1.0/instances?recursion=1&filter=name+eq+{c}").metadata
    assert [i["name"] for i in got] == [c]
    assert d.get("/1.0/instances?recursion=1&filter=name+eq+nothing-like-this").metadata == []


def check_file_delete(d, c):
    d.request("POST", f"/1.0/instances/{c}/files?path=/root/del", raw=b"x")
    assert d.request("DELETE", f"/1.0/instances/{c}/files?path=/root/del").status == 200
    assert d.get(f"/1.0/instances/{c}/files?path=/root/del").status == 404


def check_file_append(d, c):
    d.request("POST", f"/1.0/instances/{c}/files?path=/root/app", raw=b"a")
    d.request("POST", f"/1.0/instances/{c}/files?path=/root/app", raw=b"b", headers={"X-LXD-write": "append"})
    assert d.get(f"/1.0/instances/{c}/files?path=/root/app").body == b"ab"


def check_directory_manipulation(d, c):
    d.request("POST", f"/1.0/instances/{c}/files?path=/root/dir", headers={"X-LXD-type": "directory"})
    r = d.get(f"/1.0/instances/{c}/files?path=/root")
    assert r.headers["X-LXD-type"] == "directory" and "dir" in r.metadata


def check_file_symlinks(d, c):
    d.request("POST", f"/1.0/instances/{c}/files?path=/root/lnk", raw=b"/etc/hostname",
              headers={"X-LXD-type": "symlink"})
    assert d.run("lxc", "exec", c, "--", "readlink", "/root/lnk").stdout.strip() == "/etc/hostname"


def check_file_get_symlink(d, c):
    d.request("POST", f"/1.0/instances/{c}/files?path=/root/lnk2", raw=b"/etc/hostname",
              headers={"X-LXD-type": "symlink"})
    r = d.get(f"/1.0/instances/{c}/files?path=/root/lnk2")
    assert r.headers["X-LXD-type"] == "symlink" and r.body == b"/etc/hostname"


def check_container_exec_recording(d, c):
    res = op(d, d.request("POST", f"/1.0/instances/{c}/exec",
                          {"command": ["echo", "rec"], "record-output": True, "wait-for-websocket": False}))
    assert res["metadata"]["return"] == 0
    assert d.get(res["metadata"]["output"]["1"]).body == b"rec\n"


def check_container_exec_signal_handling(d, c):
    import aiohttp

    r = d.request("POST", f"/1.0/instances/{c}/exec", {"command": ["sleep", "30"], "wait-for-websocket": True,
                                                      "interactive": False})
    fds, opurl = r.json["metadata"]["metadata"]["fds"], r.json["operation"]

    async def go():
        conn = aiohttp.UnixConnector(path=d.socket)
        async with aiohttp.ClientSession(connector=conn) as s:
            socks = {k: await s.ws_connect(f"http://localhost{opurl}/websocket?secret={v}") for k, v in fds.items()}
            await asyncio.sleep(0.3)
            await socks["control"].send_str(json.dumps({"command": "signal", "signal": 15}))
            for k in ("1", "2"):
                async for _ in socks[k]:
                    pass
    asyncio.run(go())
    res = d.get(f"{opurl}/wait?timeout=10").metadata
    assert res["metadata"]["return"] == 143


def check_snapshot_expiry(d, c):
    s = unique("x")
    d.wait_op(d.request("POST", f"/1.0/instances/{c}/snapshots", {"name": s}))
    d.request("PUT", f"/1.0/instances/{c}/snapshots/{s}", {"expires_at": "2099-01-01T00:00:00Z"})
    assert d.get(f"/1.0/instances/{c}/snapshots/{s}").metadata["expires_at"].startswith("2099-01-01")


def check_snapshot_expiry_creation(d, c):
    s = unique("x")
    d.wait_op(d.request("POST", f"/1.0/instances/{c}/snapshots", {"name": s, "expires_at": "2098-01-01T00:00:00Z"}))
    assert d.get(f"/1.0/instances/{c}/snapshots/{s}").metadata["expires_at"].startswith("2098-01-01")


def check_container_edit_metadata(d, c):
    meta = d.get(f"/1.0/instances/{c}/metadata").metadata
    meta["properties"]["description"] = "edited"
    assert d.request("PUT", f"/1.0/instances/{c}/metadata", meta).status == 200
    assert d.get(f"/1.0/instances/{c}/metadata").metadata["properties"]["description"] == "edited"
    assert "hostname.tpl" in d.get(f"/1.0/instances/{c}/metadata/templates").metadata


def check_console(d, c):
    r = d.request("POST", f"/1.0/instances/{c}/console", {"width": 80, "height": 24})
    assert r.status == 202 and set(r.json["metadata"]["metadata"]["fds"]) == {"0", "control"}
    d.request("DELETE", r.json["operation"])
    assert d.get(f"/1.0/instances/{c}/console").status == 200


def check_image_compression_algorithm(d, c):
    c2 = unique("pub")
    d.lxc("copy", c, c2)
    alias = unique("img")
    res = op(d, d.request("POST", "/1.0/images", {"source": {"type": "instance", "name": c2},
                                                  "compression_algorithm": "xz", "aliases": [{"name": alias}]}))
    assert res["status"] == "Success", res["err"]
    fp = res["metadata"]["fingerprint"]
    raw = d.get(f"/1.0/images/{fp}/export").body
    assert raw[:6] == b"\xfd7zXZ\x00"     # an xz stream
    d.wait_op(d.request("DELETE", f"/1.0/images/{fp}"))
    d.lxc("delete", c2)


def check_image_create_aliases(d, c):
    check_image_compression_algorithm(d, c)


def check_image_force_refresh(d, c):
    """POST /1.0/images/<fp>/refresh (`lxc image refresh`): an image pulled by alias from a server
    (the daemon itself over HTTPS, into a project with its own images) is replaced by what the alias
    points at now. Two daemons: tests/integration/test_remote_images.py."""
    import os
    import shutil
    import tempfile
    from corral.cli.busybox import build_busybox_image
    server_cfg = d.get("/1.0").metadata
    address = server_cfg["config"].get("core.https_address", "")
    proj, alias, made = unique("rp"), unique("ra"), []
    work = tempfile.mkdtemp(prefix="corral-test-ext-")

    def publish() -> str:
        path = build_busybox_image(os.path.join(work, unique("i")), description=unique("rev"))
        fp = d.lxc("image", "import", path, "--public").stdout.strip().split()[-1]
        made.append(fp)
        return fp
    try:
        if not address:
            address = f"127.0.0.1:{free_port()}"
            assert d.request("PATCH", "/1.0", {"config": {"core.https_address": address}}).status == 200
        old = publish()
        assert d.request("POST", "/1.0/images/aliases", {"name": alias, "target": old}).status == 201
        assert d.request("POST", "/1.0/projects", {"name": proj, "config": {"features.images": "true"}}).status == 201
        source = {"type": "image", "mode": "pull", "server": f"https://{address}", "protocol": "lxd",
                  "alias": alias, "certificate": server_cfg["environment"]["certificate"]}
        res = op(d, d.request("POST", f"/1.0/images?project={proj}", {"source": source, "auto_update": True}))
        assert res["status"] == "Success" and res["metadata"]["fingerprint"] == old, res
        res = op(d, d.request("POST", f"/1.0/images/{old}/refresh?project={proj}"))
        assert res["status"] == "Success" and res["metadata"]["refreshed"] is False, res
        new = publish()
        assert d.request("PUT", f"/1.0/images/aliases/{alias}", {"target": new, "description": ""}).status == 200
        res = op(d, d.request("POST", f"/1.0/images/{old[:16]}/refresh?project={proj}"))
        assert res["status"] == "Success" and res["metadata"]["refreshed"] is True, res
        assert [u.split("?")[0] for u in d.get(f"/1.0/images?project={proj}").metadata] == [f"/1.0/images/{new}"]
        assert d.get(f"/1.0/images/{new}?project={proj}").metadata["update_source"]["alias"] == alias
    finally:
        for u in d.get(f"/1.0/images?project={proj}").metadata or []:
            d.wait_op(d.request("DELETE", u))
        d.request("DELETE", f"/1.0/projects/{proj}")
        for fp in made:
            d.wait_op(d.request("DELETE", f"/1.0/images/{fp}"))
        if not server_cfg["config"].get("core.https_address"):
            d.request("PATCH", "/1.0", {"config": {"core.https_address": ""}})
        shutil.rmtree(work, ignore_errors=True)


def check_container_stateless_copy(d, c):
    c2 = unique("cp")
    res = op(d, d.request("POST", "/1.0/instances", {"name": c2, "source": {"type": "copy", "source": c}}))
    assert res["status"] == "Success", res["err"]
    d.lxc("delete", c2)


def check_container_only_migration(d, c):
    c2 = unique("cp")
    res = op(d, d.request("POST", "/1.0/instances", {"name": c2, "source": {"type": "copy", "source": c,
                                                                            "instance_only": True}}))
    assert res["status"] == "Success", res["err"]
    assert d.get(f"/1.0/instances/{c2}/snapshots").metadata == []
    d.lxc("delete", c2)


def check_instance_create_start(d, c):
    c2 = unique("st")
    res = op(d, d.request("POST", "/1.0/instances", {"name": c2, "start": True,
                                                     "source": {"type": "image", "alias": "busybox"}}))
    assert res["status"] == "Success", res["err"]
    assert d.get(f"/1.0/instances/{c2}").metadata["status"] == "Running"
    d.lxc("delete", "-f", c2)


def check_instance_all_projects(d, c):
    proj, c2 = unique("ap"), unique("ap")
    d.lxc("project", "create", proj, "-c", "features.images=false")
    try:
        d.lxc("init", "busybox", c2, "--project", proj, "-s", "default")
        listed = d.get("/1.0/instances?all-projects=true&recursion=1").metadata
        assert {(i["project"], i["name"]) for i in listed} >= {("default", c), (proj, c2)}
        rows = {tuple(ln.split(",")[:2]) for ln in d.lxc("list", "--all-projects", "-f", "csv").stdout.splitlines()}
        assert {("default", c), (proj, c2)} <= rows
    finally:
        d.lxc("delete", "-f", c2, "--project", proj, check=False)
        d.lxc("project", "delete", proj, check=False)


def _custom_volume(d, pool="default", config=None):
    v = unique("vol")
    r = d.request("POST", f"/1.0/storage-pools/{pool}/volumes/custom", {"name": v, "config": config or {}})
    assert r.status == 200, r.body
    return v


def check_storage_api_volume_rename(d, c):
    v, v2 = _custom_volume(d), unique("vol")
    r = d.request("POST", f"/1.0/storage-pools/default/volumes/custom/{v}", {"name": v2})
    assert r.status == 201 and r.headers["Location"] == "/1.0/storage-pools/default/volumes/custom", r.body  # LXD: sync
    assert d.get(f"/1.0/storage-pools/default/volumes/custom/{v}").status == 404
    assert d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v2}").status == 200


def check_storage_api_local_volume_handling(d, c):
    v, v2 = _custom_volume(d), unique("vol")
    res = op(d, d.request("POST", "/1.0/storage-pools/default/volumes/custom",
                          {"name": v2, "source": {"type": "copy", "pool": "default", "name": v}}))
    assert res["status"] == "Success", res["err"]
    assert d.get(f"/1.0/storage-pools/default/volumes/custom/{v2}").status == 200
    for name in (v, v2):
        assert d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{name}").status == 200


def check_storage_api_volume_snapshots(d, c):
    v = _custom_volume(d)
    base = f"/1.0/storage-pools/default/volumes/custom/{v}/snapshots"
    assert op(d, d.request("POST", base, {"name": "s1"}))["status"] == "Success"
    assert d.get(base).metadata == [f"{base}/s1"]
    assert op(d, d.request("DELETE", f"{base}/s1"))["status"] == "Success"
    assert d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v}").status == 200


def check_storage_volume_state(d, c):
    st = d.get(f"/1.0/storage-pools/default/volumes/container/{c}/state").metadata
    assert st["usage"]["used"] > 0


def check_storage_unmapped(d, c):
    v = _custom_volume(d, config={"security.unmapped": "true"})
    assert d.get(f"/1.0/storage-pools/default/volumes/custom/{v}").metadata["config"]["security.unmapped"] == "true"
    bad = d.request("POST", "/1.0/storage-pools/default/volumes/custom",
                    {"name": unique("vol"), "config": {"security.unmapped": "maybe"}})
    assert bad.status == 400
    assert d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v}").status == 200


def check_storage_shifted(d, c):
    v = _custom_volume(d, config={"security.shifted": "true"})
    d.lxc("storage", "volume", "attach", "default", v, c, "/mnt/shifted")
    try:
        d.lxc("exec", c, "--", "touch", "/mnt/shifted/f")
        import os
        host = d.get("/1.0/storage-pools/default").metadata["config"]["source"]
        assert os.stat(os.path.join(host, "custom", f"default_{v}", "f")).st_uid == 0   # idmapped, not chowned
    finally:
        d.lxc("storage", "volume", "detach", "default", v, c)
        d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v}")


def _second_pool(d):
    pool = unique("p")
    assert d.request("POST", "/1.0/storage-pools", {"name": pool, "driver": "dir"}).status == 201
    return pool


def check_instance_pool_move(d, c):
    pool, c2 = _second_pool(d), unique("mv")
    try:
        d.lxc("init", "busybox", c2)
        res = op(d, d.request("POST", f"/1.0/instances/{c2}", {"name": c2, "migration": True, "pool": pool}))
        assert res["status"] == "Success", res["err"]
        assert d.get(f"/1.0/instances/{c2}").metadata["expanded_devices"]["root"]["pool"] == pool
    finally:
        d.lxc("delete", "-f", c2, check=False)
        d.request("DELETE", f"/1.0/storage-pools/{pool}")


def check_container_local_cross_pool_handling(d, c):
    pool, c2 = _second_pool(d), unique("xp")
    try:
        res = op(d, d.request("POST", "/1.0/instances", {
            "name": c2, "source": {"type": "copy", "source": c},
            "devices": {"root": {"type": "disk", "path": "/", "pool": pool}}}))
        assert res["status"] == "Success", res["err"]
        assert d.get(f"/1.0/storage-pools/{pool}/volumes/container/{c2}").status == 200
    finally:
        d.lxc("delete", "-f", c2, check=False)
        d.request("DELETE", f"/1.0/storage-pools/{pool}")



# ---- networks (the host fixture's `init --auto` made a managed bridge with eth0 on it) ----------

def _bridge(d):
    return next(n["name"] for n in d.get("/1.0/networks?recursion=1").metadata if n["managed"])


def _lease_of(d, c):
    from helpers import wait_for
    return wait_for(lambda: [x for x in d.get(f"/1.0/networks/{_bridge(d)}/leases").metadata if x["hostname"] == c],
                    timeout=20)[0]


def check_network(d, c):
    net = d.get(f"/1.0/networks/{_bridge(d)}").metadata
    assert net["managed"] and net["type"] == "bridge" and f"/1.0/instances/{c}" in net["used_by"]
    assert any(not n["managed"] for n in d.get("/1.0/networks?recursion=1").metadata)  # host interfaces


def check_network_leases(d, c):
    lease = _lease_of(d, c)
    assert lease["type"] == "dynamic" and lease["hwaddr"] == d.get(f"/1.0/instances/{c}").metadata["config"][
        "volatile.eth0.hwaddr"]


def check_network_leases_location(d, c):
    assert _lease_of(d, c)["location"] == "none"


def check_network_state(d, c):
    st = d.get(f"/1.0/networks/{_bridge(d)}/state").metadata
    assert st["state"] == "up" and st["counters"]["packets_received"] > 0 and st["addresses"]
    assert st["bridge"]["upper_devices"]


def check_network_hwaddr(d, c):
    name = unique("nh")[:12]
    assert d.request("POST", "/1.0/networks", {"name": name, "config": {
        "ipv4.address": "none", "bridge.hwaddr": "00:16:3e:12:34:56"}}).status == 201
    try:
        assert d.get(f"/1.0/networks/{name}/state").metadata["hwaddr"] == "00:16:3e:12:34:56"
    finally:
        d.request("DELETE", f"/1.0/networks/{name}")


def check_network_vxlan_ttl(d, c):
    import subprocess
    name = unique("nv")[:10]
    assert d.request("POST", "/1.0/networks", {"name": name, "config": {
        "ipv4.address": "none", "tunnel.t.protocol": "vxlan", "tunnel.t.id": "77", "tunnel.t.local": "127.0.0.1",
        "tunnel.t.remote": "127.0.0.1", "tunnel.t.ttl": "7"}}).status == 201
    try:
        out = subprocess.run(["ip", "-d", "link", "show", f"{name}-t"], capture_output=True, text=True).stdout
        assert "vxlan id 77" in out and "ttl 7" in out and f"master {name}" in out
    finally:
        d.request("DELETE", f"/1.0/networks/{name}")


def check_network_dhcp_expiry(d, c):
    import subprocess
    br = _bridge(d)
    assert d.request("PATCH", f"/1.0/networks/{br}", {"config": {"ipv4.dhcp.expiry": "2h"}}).status == 200
    try:
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        assert any(f"--interface={br}" in line and ",2h" in line for line in ps.splitlines())
    finally:
        d.request("PATCH", f"/1.0/networks/{br}", {"config": {"ipv4.dhcp.expiry": None}})


def check_network_type_macvlan(d, c):
    name = unique("nm")[:12]
    assert d.request("POST", "/1.0/networks", {"name": name, "type": "macvlan",
                                               "config": {"parent": _bridge(d)}}).status == 201
    try:
        net = d.get(f"/1.0/networks/{name}").metadata
        assert net["type"] == "macvlan" and net["config"]["parent"] == _bridge(d)
    finally:
        d.request("DELETE", f"/1.0/networks/{name}")


def check_instance_nic_network(d, c):
    inst = d.get(f"/1.0/instances/{c}").metadata
    assert inst["expanded_devices"]["eth0"]["network"] == _bridge(d)
    st = d.get(f"/1.0/instances/{c}/state").metadata["network"]["eth0"]
    assert st["host_name"] == inst["config"]["volatile.eth0.host_name"]


def _httpd(d, c) -> None:
    d.lxc("exec", c, "--", "sh", "-c", "mkdir -p /srv && echo hello-proxy > /srv/p.txt && "
          "(pidof httpd || httpd -p 127.0.0.1:8080 -h /srv)")


def _http_get(connect) -> bytes:

    def attempt():
        try:
            with connect() as s:
                s.sendall(b"GET /p.txt HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                return data
        except OSError:
            return None
    return wait_for(attempt, timeout=10)


def check_proxy(d, c):
    import socket
    _httpd(d, c)
    port = free_port()
    d.lxc("config", "device", "add", c, "px", "proxy", f"listen=tcp:127.0.0.1:{port}", "connect=tcp:127.0.0.1:8080")
    try:
        assert b"hello-proxy" in _http_get(lambda: socket.create_connection(("127.0.0.1", port), timeout=5))
    finally:
        d.lxc("config", "device", "remove", c, "px")
    import pytest as _pytest
    with _pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def check_proxy_unix(d, c):
    import os
    import socket
    _httpd(d, c)
    path = os.path.join(d.dir, unique("px") + ".sock")
    d.lxc("config", "device", "add", c, "pu", "proxy", f"listen=unix:{path}", "connect=tcp:127.0.0.1:8080")
    try:
        def conn():
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(path)
            return s
        assert b"hello-proxy" in _http_get(conn)
    finally:
        d.lxc("config", "device", "remove", c, "pu")
    assert not os.path.exists(path)


def check_proxy_udp(d, c):
    """UDP through the instance's namespace: a DNS query to the bridge's dnsmasq, sent from the host."""
    import ipaddress
    import socket
    import struct
    gw = str(ipaddress.ip_interface(d.get(f"/1.0/networks/{_bridge(d)}").metadata["config"]["ipv4.address"]).ip)
    port = free_port()
    d.lxc("config", "device", "add", c, "pd", "proxy", f"listen=udp:127.0.0.1:{port}", f"connect=udp:{gw}:53")
    try:
        qname = b"".join(bytes([len(p)]) + p for p in (c.encode(), b"lxd")) + b"\0"
        query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(query, ("127.0.0.1", port))
        reply, _ = s.recvfrom(4096)
        s.close()
        assert reply[:2] == b"\x12\x34" and struct.unpack(">H", reply[6:8])[0] >= 1   # one answer: c.lxd
    finally:
        d.lxc("config", "device", "remove", c, "pd")


def check_container_backup(d, c):
    import io
    import tarfile
    res = op(d, d.request("POST", f"/1.0/instances/{c}/backups", {"name": "b0"}))
    assert res["status"] == "Success", res["err"]
    assert d.get(f"/1.0/instances/{c}/backups").metadata == [f"/1.0/instances/{c}/backups/b0"]
    raw = d.get(f"/1.0/instances/{c}/backups/b0/export").body
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        names = tf.getnames()
    assert "backup/index.yaml" in names and "backup/container/rootfs/bin/busybox" in names
    assert d.request("POST", f"/1.0/instances/{c}/backups/b0", {"name": "b1"}).status == 201
    assert d.request("DELETE", f"/1.0/instances/{c}/backups/b1").status == 200
    assert d.get(f"/1.0/instances/{c}/backups").metadata == []


def check_backup_compression(d, c):
    res = op(d, d.request("POST", f"/1.0/instances/{c}/backups", {"name": "bx", "compression_algorithm": "xz"}))
    assert res["status"] == "Success", res["err"]
    assert d.get(f"/1.0/instances/{c}/backups/bx/export").body[:6] == b"\xfd7zXZ\x00"
    d.request("DELETE", f"/1.0/instances/{c}/backups/bx")


def _test_cert_b64(name: str) -> tuple[str, str]:
    import base64
    import ssl
    from corral.pki import certs
    crt, _ = certs.generate(name)
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(crt.decode())).decode(), certs.fingerprint(crt)


def check_certificate_update(d, c):
    b64, fp = _test_cert_b64("ext-upd")
    assert d.request("POST", "/1.0/certificates", {"type": "client", "certificate": b64, "name": "a"}).status == 201
    try:
        assert d.request("PATCH", f"/1.0/certificates/{fp}", {"name": "b"}).status == 200
        assert d.get(f"/1.0/certificates/{fp}").metadata["name"] == "b"
        assert d.request("PUT", f"/1.0/certificates/{fp}", {"name": "c", "type": "client"}).status == 200
        assert d.get(f"/1.0/certificates/{fp}").metadata["name"] == "c"
    finally:
        d.request("DELETE", f"/1.0/certificates/{fp}")


def check_certificate_project(d, c):
    b64, fp = _test_cert_b64("ext-proj")
    r = d.request("POST", "/1.0/certificates", {"type": "client", "certificate": b64, "restricted": True,
                                                "projects": ["default"]})
    assert r.status == 201
    try:
        cert = d.get(f"/1.0/certificates/{fp}").metadata
        assert cert["restricted"] is True and cert["projects"] == ["default"]
        assert d.request("POST", "/1.0/certificates", {"type": "client", "certificate": _test_cert_b64("x")[0],
                                                       "restricted": True, "projects": ["nothere"]}).status == 404
    finally:
        d.request("DELETE", f"/1.0/certificates/{fp}")


def check_certificate_token(d, c):
    r = d.request("POST", "/1.0/certificates", {"token": True, "name": "ext-token"})
    assert r.status == 202
    meta = r.json["metadata"]
    assert meta["class"] == "token" and meta["metadata"]["request"]["name"] == "ext-token"
    assert meta["metadata"]["secret"] and meta["metadata"]["fingerprint"]
    assert d.request("DELETE", f"/1.0/operations/{meta['id']}").status == 200


_DEVLXD_CLIENT: list[str] = []


def _devlxd(d, c, *args: str) -> bytes:
    import os
    import subprocess
    import tempfile
    if not _DEVLXD_CLIENT:
        out = os.path.join(tempfile.mkdtemp(prefix="corral-devlxd-"), "devlxd_client")
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "devlxd_client.c")
        subprocess.run(["gcc", "-static", "-O2", "-o", out, src], check=True)
        _DEVLXD_CLIENT.append(out)
    d.lxc("file", "push", _DEVLXD_CLIENT[0], f"{c}/bin/devlxd_client", "--mode", "0755")
    return subprocess.run(["lxc", "exec", c, "--", "devlxd_client", *args], env=d.env, capture_output=True,
                          timeout=60, check=True).stdout


def check_devlxd_events(d, c):
    import threading
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("raw", _devlxd(d, c, "/1.0/events", "ws", "3")))
    t.start()
    import time
    time.sleep(1.5)
    d.lxc("config", "set", c, "user.devlxd-ext", "v1")
    t.join()
    assert b'"key":"user.devlxd-ext","old_value":"","value":"v1"' in out["raw"].replace(b", ", b",").replace(b": ", b":")


def check_devlxd_images(d, c):
    fp = d.get("/1.0/images/aliases/busybox").metadata["target"]
    assert b" 403 " in _devlxd(d, c, f"/1.0/images/{fp}/export").split(b"\r\n", 1)[0] + b" "
    d.lxc("config", "set", c, "security.devlxd.images", "true")
    try:
        assert _devlxd(d, c, f"/1.0/images/{fp}/export").startswith(b"HTTP/1.0 200")
    finally:
        d.lxc("config", "unset", c, "security.devlxd.images")


def _res(d):
    return d.get("/1.0/resources").metadata


def check_resources_v2(d, c):
    m = _res(d)
    assert set(m) >= {"cpu", "memory", "gpu", "network", "storage", "usb", "pci", "system"}
    assert m["cpu"]["total"] == sum(len(core["threads"]) for s in m["cpu"]["sockets"] for core in s["cores"])
    assert m["memory"]["used"] + 0 <= m["memory"]["total"]
    assert d.lxc("info", "--resources").stdout.startswith("CPU")


def check_resources_gpu(d, c):
    g = _res(d)["gpu"]
    assert g["total"] == len(g["cards"])


def check_resources_numa(d, c):
    m = _res(d)
    assert all(isinstance(n["numa_node"], int) for n in m["memory"]["nodes"]) and m["memory"]["nodes"]
    assert all(isinstance(card["numa_node"], int) for card in m["network"]["cards"])


def check_resources_disk_sata(d, c):
    assert all(disk["type"] in ("sata", "scsi", "usb", "nvme", "virtio", "mmc", "cdrom", "")
               for disk in _res(d)["storage"]["disks"])


def check_resources_disk_id(d, c):
    assert all("device_id" in disk for disk in _res(d)["storage"]["disks"])


def check_resources_usb_pci(d, c):
    m = _res(d)
    assert m["usb"]["total"] == len(m["usb"]["devices"]) and m["pci"]["total"] == len(m["pci"]["devices"])
    assert all(len(p["pci_address"].split(":")) == 3 for p in m["pci"]["devices"])


def check_resources_cpu_threads_numa(d, c):
    assert all("numa_node" in t for s in _res(d)["cpu"]["sockets"] for core in s["cores"] for t in core["threads"])


def check_resources_cpu_core_die(d, c):
    assert all(isinstance(core["die"], int) for s in _res(d)["cpu"]["sockets"] for core in s["cores"])


def check_resources_pci_iommu(d, c):
    assert all(isinstance(p["iommu_group"], int) for p in _res(d)["pci"]["devices"])


def check_container_exec_user_group_cwd(d, c):
    assert d.lxc("exec", c, "--cwd", "/tmp", "--user", "1000", "--group", "1001", "--", "sh", "-c",
                 "pwd; id -u; id -g").stdout.split() == ["/tmp", "1000", "1001"]


def check_backup_compression_algorithm(d, c):
    res = op(d, d.request("POST", f"/1.0/instances/{c}/backups", {"name": "bz", "compression_algorithm": "bzip2"}))
    assert res["status"] == "Success", res["err"]
    assert d.get(f"/1.0/instances/{c}/backups/bz/export").body[:3] == b"BZh"
    d.request("DELETE", f"/1.0/instances/{c}/backups/bz")
    r = d.request("POST", f"/1.0/instances/{c}/backups", {"name": "bad", "compression_algorithm": "lzma9"})
    assert r.status == 400


def _import(d, c, headers):
    res = op(d, d.request("POST", f"/1.0/instances/{c}/backups", {"name": "imp"}))
    assert res["status"] == "Success", res["err"]
    raw = d.get(f"/1.0/instances/{c}/backups/imp/export").body
    d.request("DELETE", f"/1.0/instances/{c}/backups/imp")
    return op(d, d.request("POST", "/1.0/instances", raw=raw,
                           headers={"Content-Type": "application/octet-stream", **headers}))


def check_backup_override_name(d, c):
    new = unique("imp")
    try:
        res = _import(d, c, {"X-LXD-name": new})
        assert res["status"] == "Success", res["err"]
        assert d.get(f"/1.0/instances/{new}").metadata["name"] == new
    finally:
        d.lxc("delete", "-f", new, check=False)


def check_container_backup_override_pool(d, c):
    new, pool = unique("imp"), unique("pool")
    d.lxc("storage", "create", pool, "dir")
    try:
        res = _import(d, c, {"X-LXD-name": new, "X-LXD-pool": pool})
        assert res["status"] == "Success", res["err"]
        assert d.get(f"/1.0/instances/{new}").metadata["expanded_devices"]["root"]["pool"] == pool
    finally:
        d.lxc("delete", "-f", new, check=False)
        d.lxc("storage", "delete", pool, check=False)


def check_custom_volume_backup(d, c):
    vol, new = unique("vol"), unique("vol")
    base = "/1.0/storage-pools/default/volumes/custom"
    d.lxc("storage", "volume", "create", "default", vol)
    try:
        res = op(d, d.request("POST", f"{base}/{vol}/backups", {"name": "vb"}))
        assert res["status"] == "Success", res["err"]
        assert d.get(f"{base}/{vol}/backups").metadata == [f"{base}/{vol}/backups/vb"]
        raw = d.get(f"{base}/{vol}/backups/vb/export").body
        assert op(d, d.request("DELETE", f"{base}/{vol}/backups/vb"))["status"] == "Success"
        assert d.get(f"{base}/{vol}/backups").metadata == []
        res = op(d, d.request("POST", base, raw=raw, headers={"Content-Type": "application/octet-stream",
                                                              "X-LXD-name": new}))
        assert res["status"] == "Success", res["err"]
        assert d.get(f"{base}/{new}").metadata["name"] == new
    finally:
        d.lxc("storage", "volume", "delete", "default", new, check=False)
        d.lxc("storage", "volume", "delete", "default", vol, check=False)


# ---- projects: limits, restrictions, usage -------------------------------------------------------

@contextlib.contextmanager
def _project(d, config: dict):
    """A project using the default project's images, its own default profile with a root disk."""
    name = unique("xp")
    assert d.request("POST", "/1.0/projects", {"name": name, "config": {"features.images": "false",
                                                                          **config}}).status in (200, 201)
    try:
        assert d.request("PATCH", f"/1.0/profiles/default?project={name}", {"devices": {"root": {
            "type": "disk", "path": "/", "pool": "default"}}}).status == 200
        yield name
    finally:
        for u in d.get(f"/1.0/instances?project={name}").metadata or []:
            d.lxc("delete", "-f", u.rsplit("/", 1)[1].split("?")[0], "--project", name, check=False)
        assert d.request("DELETE", f"/1.0/projects/{name}").status == 200


def _create(d, p, **extra):
    return d.request("POST", f"/1.0/instances?project={p}",
                     {"name": unique("xc"), "source": {"type": "image", "alias": "busybox"}, **extra})


def check_projects_limits(d, c):
    with _project(d, {"limits.containers": "0"}) as p:
        r = _create(d, p)
        assert (r.status, r.json["error"]) == \
            (403, f'Reached maximum number of instances of type "container" in project "{p}"')
    with _project(d, {"limits.memory": "64MiB"}) as p:
        r = _create(d, p, config={"limits.memory": "128MiB"})
        assert r.status == 403 and 'Reached maximum aggregate value "64MiB" for "limits.memory"' in r.json["error"]


def check_projects_limits_instances(d, c):
    with _project(d, {"limits.instances": "0"}) as p:
        r = _create(d, p)
        assert (r.status, r.json["error"]) == (403, f'Reached maximum number of instances in project "{p}"')


def check_projects_limits_disk(d, c):
    with _project(d, {"limits.disk": "1GiB"}) as p:
        r = d.request("POST", f"/1.0/storage-pools/default/volumes/custom?project={p}", {"name": unique("xv")})
        assert r.status == 403 and 'has no "size" config set' in r.json["error"], r.body
        assert d.get(f"/1.0/storage-pools/default/volumes/custom?project={p}").metadata == []


def check_project_usage(d, c):
    with _project(d, {"limits.containers": "3"}) as p:
        d.wait_op(_create(d, p))
        res = d.get(f"/1.0/projects/{p}/state").metadata["resources"]
        assert res["containers"] == {"limit": 3, "usage": 1}
        assert sorted(res) == ["containers", "cpu", "disk", "instances", "memory", "networks", "processes",
                               "virtual-machines"]


def check_projects_restrictions(d, c):
    with _project(d, {"restricted": "true"}) as p:
        r = _create(d, p, config={"security.privileged": "true"})
        assert r.status == 403 and "Privileged containers are forbidden" in r.json["error"], r.body
        assert d.get(f"/1.0/instances?project={p}").metadata == []


def check_projects_restricted_backups_and_snapshots(d, c):
    with _project(d, {"restricted": "true"}) as p:
        r = _create(d, p)
        d.wait_op(r)
        name = r.json["metadata"]["resources"]["instances"][0].rsplit("/", 1)[1].split("?")[0]
        r = d.request("POST", f"/1.0/instances/{name}/snapshots?project={p}", {"name": "s"})
        assert (r.status, r.json["error"]) == (403, f'Project "{p}" doesn\'t allow for snapshot creation')
        r = d.request("POST", f"/1.0/instances/{name}/backups?project={p}", {"name": "b"})
        assert (r.status, r.json["error"]) == (403, f'Project "{p}" doesn\'t allow for backup creation')


def check_projects_networks_restricted_access(d, c):
    bridge = d.get("/1.0/profiles/default").metadata["devices"]["eth0"]["network"]
    with _project(d, {"restricted": "true", "restricted.networks.access": "elsewhere"}) as p:
        r = d.request("POST", f"/1.0/profiles?project={p}", {"name": "n", "devices": {
            "eth0": {"type": "nic", "network": bridge, "name": "eth0"}}})
        assert r.status == 403 and "Network not allowed in project" in r.json["error"], r.body
    with _project(d, {"restricted": "true", "restricted.networks.access": bridge}) as p:
        r = d.request("POST", f"/1.0/profiles?project={p}", {"name": "n", "devices": {
            "eth0": {"type": "nic", "network": bridge, "name": "eth0"}}})
        assert r.status == 201, r.body
        d.request("DELETE", f"/1.0/profiles/n?project={p}")


# ---- issue 10 walk over LXD's list: behaviour that already worked ---------------------------------

@contextlib.contextmanager
def _container(d, *args, start=True):
    """A container of the check's own (launched or only created), deleted afterwards."""
    name = unique("xw")
    d.lxc("launch" if start else "init", "busybox", name, *args)
    try:
        yield name
    finally:
        d.lxc("delete", "-f", name, check=False)


def _env(d):
    return d.get("/1.0").metadata["environment"]


def check_container_last_used_at(d, c):
    with _container(d, start=False) as c2:
        assert d.get(f"/1.0/instances/{c2}").metadata["last_used_at"] == "1970-01-01T00:00:00Z"
        d.lxc("start", c2)
        used = d.get(f"/1.0/instances/{c2}").metadata["last_used_at"]
        assert used.startswith("20") and used > d.get(f"/1.0/instances/{c2}").metadata["created_at"]


def check_container_cpu_time(d, c):
    d.lxc("exec", c, "--", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
    usage = d.get(f"/1.0/instances/{c}/state").metadata["cpu"]["usage"]
    assert isinstance(usage, int) and usage > 0


def check_container_image_properties(d, c):
    props = d.get("/1.0/images/aliases/busybox").metadata["target"]
    props = d.get(f"/1.0/images/{props}").metadata["properties"]
    cfg = d.get(f"/1.0/instances/{c}").metadata["config"]
    assert props and all(cfg[f"image.{k}"] == v for k, v in props.items())


def _idmap(d, name, key="volatile.idmap.next"):
    return json.loads(d.get(f"/1.0/instances/{name}").metadata["config"][key])


def check_id_map(d, c):
    with _container(d, "-c", "security.idmap.isolated=true", "-c", "security.idmap.size=200000") as c2:
        m = _idmap(d, c2)
        assert {e["Maprange"] for e in m} == {200000}, m
        assert m[0]["Hostid"] != _idmap(d, c)[0]["Hostid"]
        uid = d.lxc("exec", c2, "--", "cat", "/proc/self/uid_map").stdout.split()
        assert uid == ["0", str(m[0]["Hostid"]), "200000"], uid


def check_id_map_base(d, c):
    cfg = d.get(f"/1.0/instances/{c}").metadata["config"]
    assert int(cfg["volatile.idmap.base"]) == _idmap(d, c)[0]["Hostid"]


def check_id_map_current(d, c):
    cur = _idmap(d, c, "volatile.idmap.current")
    uid = d.lxc("exec", c, "--", "cat", "/proc/self/uid_map").stdout.split()
    e = [e for e in cur if e["Isuid"]][0]
    assert uid == [str(e["Nsid"]), str(e["Hostid"]), str(e["Maprange"])]


def check_kernel_features(d, c):
    feats = _env(d)["kernel_features"]
    assert {"idmapped_mounts", "netnsid_getifaddrs", "seccomp_listener", "shiftfs", "uevent_injection",
            "unpriv_fscaps"} <= set(feats) and set(feats.values()) <= {"true", "false"}


def check_lxc_features(d, c):
    feats = _env(d)["lxc_features"]
    assert {"cgroup2", "devpts_fd", "network_veth_router", "pidfd", "seccomp_notify"} <= set(feats)
    assert set(feats.values()) <= {"true", "false"}


def check_firewall_driver(d, c):
    assert _env(d)["firewall"] == "nftables"


def check_server_instance_driver_operational(d, c):
    # LXD's "lxc | qemu" and "<liblxc> | <qemu>" when QEMU runs VMs here (issue 14), plain "lxc" otherwise.
    env = _env(d)
    lxc_version = d.run("lxc-info", "--version").stdout.strip()
    qemu = d.run("qemu-system-x86_64", "--version").stdout if shutil.which("qemu-system-x86_64") else ""
    if qemu:
        qemu_version = qemu.split("version ", 1)[1].split()[0]
        assert (env["driver"], env["driver_version"]) == ("lxc | qemu", f"{lxc_version} | {qemu_version}")
        assert env["vm_accelerator"] in ("kvm", "tcg") and env["vm_accelerator_reason"]
    else:
        assert (env["driver"], env["driver_version"]) == ("lxc", lxc_version or env["driver_version"])


def check_image_types(d, c):
    fp = d.get("/1.0/images/aliases/busybox").metadata["target"]
    assert d.get(f"/1.0/images/{fp}").metadata["type"] == "container"
    assert d.get("/1.0/images?filter=type+eq+virtual-machine").metadata == []
    assert f"/1.0/images/{fp}" in d.get("/1.0/images?filter=type+eq+container").metadata


def check_images_expiry(d, c):
    fp = d.get("/1.0/images/aliases/busybox").metadata["target"]
    old = d.get(f"/1.0/images/{fp}").metadata["expires_at"]
    try:
        assert d.request("PATCH", f"/1.0/images/{fp}", {"expires_at": "2031-02-03T04:05:06Z"}).status == 200
        assert d.get(f"/1.0/images/{fp}").metadata["expires_at"] == "2031-02-03T04:05:06Z"
    finally:
        d.request("PATCH", f"/1.0/images/{fp}", {"expires_at": old})


def check_snapshot_disk_usage(d, c):
    s = unique("s")
    op(d, d.request("POST", f"/1.0/instances/{c}/snapshots", {"name": s}))
    size = d.get(f"/1.0/instances/{c}/snapshots/{s}").metadata["size"]
    assert isinstance(size, int) and size >= -1


def _bridge(d):
    return d.get("/1.0/profiles/default").metadata["devices"]["eth0"]["network"]


def check_network_state_bond_bridge(d, c):
    st = d.get(f"/1.0/networks/{_bridge(d)}/state").metadata
    host_veth = d.get(f"/1.0/instances/{c}/state").metadata["network"]["eth0"]["host_name"]
    assert st["bond"] is None and host_veth in st["bridge"]["upper_devices"]
    assert {"id", "stp", "forward_delay", "vlan_default", "vlan_filtering"} <= set(st["bridge"])


def check_network_state_vlan(d, c):
    assert "vlan" in d.get(f"/1.0/networks/{_bridge(d)}/state").metadata
    assert d.get(f"/1.0/networks/{_bridge(d)}/state").metadata["vlan"] is None


def check_instance_bulk_state_change(d, c):
    with _project(d, {}) as p:
        names = []
        for _ in range(2):
            r = _create(d, p)
            d.wait_op(r)
            names.append(r.json["metadata"]["resources"]["instances"][0].rsplit("/", 1)[1].split("?")[0])
        op(d, d.request("PUT", f"/1.0/instances?project={p}", {"state": {"action": "start"}}))
        assert {d.get(f"/1.0/instances/{n}?project={p}").metadata["status"] for n in names} == {"Running"}
        op(d, d.request("PUT", f"/1.0/instances?project={p}", {"state": {"action": "stop", "force": True}}))
        assert {d.get(f"/1.0/instances/{n}?project={p}").metadata["status"] for n in names} == {"Stopped"}


def check_instance_get_full(d, c):
    m = d.get(f"/1.0/instances/{c}?recursion=2").metadata
    assert m["state"]["status"] == "Running" and isinstance(m["snapshots"], list) and "backups" in m
    assert m["state"]["network"]["eth0"]["host_name"]


def check_instance_file_head(d, c):
    r = d.request("HEAD", f"/1.0/instances/{c}/files?path=/etc/hostname")
    assert r.status == 200 and r.body == b"" and r.headers["X-LXD-type"] == "file"
    assert d.request("HEAD", f"/1.0/instances/{c}/files?path=/nonexistent").status == 404


def check_storage_volume_state_total(d, c):
    usage = d.get(f"/1.0/storage-pools/default/volumes/container/{c}/state").metadata["usage"]
    assert usage["used"] > 0 and isinstance(usage["total"], int)


def check_storage_volumes_all_projects(d, c):
    with _project(d, {"features.storage.volumes": "true"}) as p:
        v = unique("v")
        assert d.request("POST", f"/1.0/storage-pools/default/volumes?project={p}",
                         {"name": v, "type": "custom"}).status in (200, 201)
        try:
            urls = d.get("/1.0/storage-pools/default/volumes?all-projects=true").metadata
            assert f"/1.0/storage-pools/default/volumes/custom/{v}?project={p}" in urls
            assert f"/1.0/storage-pools/default/volumes/container/{c}" in urls
            assert not any(v in u for u in d.get("/1.0/storage-pools/default/volumes").metadata)
        finally:
            d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v}?project={p}")


def check_storage_volume_api_filtering(d, c):
    urls = d.get("/1.0/storage-pools/default/volumes?filter=type+eq+container").metadata
    assert f"/1.0/storage-pools/default/volumes/container/{c}" in urls
    assert all("/container/" in u for u in urls)
    assert d.get(f"/1.0/storage-pools/default/volumes?filter=name+eq+{c}+and+type+eq+custom").metadata == []


def check_storage_api_project(d, c):
    with _project(d, {"features.storage.volumes": "true"}) as p:
        v = unique("v")
        assert d.request("POST", f"/1.0/storage-pools/default/volumes?project={p}",
                         {"name": v, "type": "custom"}).status in (200, 201)
        try:
            assert d.get(f"/1.0/storage-pools/default/volumes/custom/{v}?project={p}").status == 200
            assert d.get(f"/1.0/storage-pools/default/volumes/custom/{v}").status == 404
        finally:
            d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v}?project={p}")


def check_usedby_consistency(d, c):
    with _project(d, {"features.storage.volumes": "true"}) as p:
        v = unique("v")
        d.request("POST", f"/1.0/storage-pools/default/volumes?project={p}", {"name": v, "type": "custom"})
        try:
            assert f"/1.0/storage-pools/default/volumes/custom/{v}?project={p}" in \
                d.get("/1.0/storage-pools/default").metadata["used_by"]
        finally:
            d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v}?project={p}")


def check_remote_token_expiry(d, c):
    import datetime
    assert d.request("PATCH", "/1.0", {"config": {"core.remote_token_expiry": "2H"}}).status == 200
    try:
        r = d.request("POST", "/1.0/certificates", {"name": unique("tok"), "type": "client", "token": True})
        meta = r.json["metadata"]["metadata"]
        exp = datetime.datetime.fromisoformat(meta["expiresAt"].replace("Z", "+00:00"))
        left = exp - datetime.datetime.now(datetime.timezone.utc)
        assert datetime.timedelta(hours=1, minutes=55) < left <= datetime.timedelta(hours=2)
        d.request("DELETE", r.json["operation"])
    finally:
        d.request("PATCH", "/1.0", {"config": {"core.remote_token_expiry": ""}})


def check_container_protection_delete(d, c):
    with _container(d, "-c", "security.protection.delete=true", start=False) as c2:
        try:
            r = d.request("DELETE", f"/1.0/instances/{c2}")
            assert (r.status, r.json["error"]) == (400, "Instance is protected"), r.body
            assert d.get(f"/1.0/instances/{c2}").status == 200
        finally:
            d.lxc("config", "set", c2, "security.protection.delete", "false")


def check_restrict_devlxd(d, c):
    assert d.lxc("exec", c, "--", "test", "-S", "/dev/lxd/sock", check=False).returncode == 0
    with _container(d, "-c", "security.devlxd=false") as c2:
        assert d.lxc("exec", c2, "--", "test", "-e", "/dev/lxd/sock", check=False).returncode != 0


def check_kernel_limits(d, c):
    with _container(d, "-c", "limits.kernel.nofile=1234") as c2:
        assert d.lxc("exec", c2, "--", "sh", "-c", "ulimit -n").stdout.strip() == "1234"


def check_linux_sysctl(d, c):
    with _container(d, "-c", "linux.sysctl.net.ipv4.ip_forward=1") as c2:
        assert d.lxc("exec", c2, "--", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"



# ---- issue 10 walk: snapshots on a schedule, volume snapshot expiry --------------------------------

_SCHEDULED: dict = {}


def _scheduled(d):
    """Once per module: a profile scheduling a snapshot every minute (also of stopped instances),
    one instance using it, one using it but overriding it with @never, and a custom volume with its
    own schedule. Waits past the next minute boundary; the snapshots each got."""
    if _SCHEDULED:
        return _SCHEDULED
    import time
    prof, on, off, vol = unique("sp"), unique("son"), unique("soff"), unique("svol")
    d.lxc("profile", "create", prof)
    try:
        d.lxc("profile", "set", prof, "snapshots.schedule", "* * * * *")
        d.lxc("profile", "set", prof, "snapshots.schedule.stopped", "true")
        d.lxc("init", "busybox", on, "-p", "default", "-p", prof)
        d.lxc("init", "busybox", off, "-p", "default", "-p", prof, "-c", "snapshots.schedule=@never")
        d.lxc("storage", "volume", "create", "default", vol, "snapshots.schedule=@daily, * * * * *")
        time.sleep(62 - time.time() % 60)
        wait_for(lambda: d.get(f"/1.0/instances/{on}/snapshots").metadata
                 and d.get(f"/1.0/storage-pools/default/volumes/custom/{vol}/snapshots").metadata, timeout=20)
        _SCHEDULED.update(on=d.get(f"/1.0/instances/{on}/snapshots").metadata,
                          off=d.get(f"/1.0/instances/{off}/snapshots").metadata,
                          vol=d.get(f"/1.0/storage-pools/default/volumes/custom/{vol}/snapshots").metadata)
    finally:
        for c in (on, off):
            d.lxc("delete", "-f", c, check=False)
        d.lxc("storage", "volume", "delete", "default", vol, check=False)
        d.lxc("profile", "delete", prof, check=False)
    return _SCHEDULED


def check_snapshot_scheduling(d, c):
    r = d.request("PATCH", f"/1.0/instances/{c}", {"config": {"snapshots.schedule": "61 * * * *"}})
    assert r.status == 400 and "snapshots.schedule" in r.json["error"], r.body
    assert len(_scheduled(d)["on"]) == 1, _scheduled(d)


def check_snapshot_schedule_aliases(d, c):
    for alias in ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@annually", "@yearly"):
        d.lxc("config", "set", c, "snapshots.schedule", alias)
    d.lxc("config", "unset", c, "snapshots.schedule")
    r = d.request("PATCH", f"/1.0/instances/{c}", {"config": {"snapshots.schedule": "@fortnightly"}})
    assert r.status == 400 and "snapshots.schedule" in r.json["error"], r.body
    assert len(_scheduled(d)["vol"]) == 1    # "@daily, * * * * *": the alias mixed with a cron line
    with _container(d, "-c", "snapshots.schedule=@startup, @daily", start=False) as c2:
        assert d.get(f"/1.0/instances/{c2}/snapshots").metadata == []
        d.lxc("start", c2)
        assert d.get(f"/1.0/instances/{c2}/snapshots").metadata == [f"/1.0/instances/{c2}/snapshots/snap0"]
    for alias in ("@startup", "@never"):   # instances only
        r = d.request("POST", "/1.0/storage-pools/default/volumes",
                      {"name": unique("v"), "type": "custom", "config": {"snapshots.schedule": alias}})
        assert r.status == 400 and "snapshots.schedule" in r.json["error"], r.body


def check_instance_snapshot_never(d, c):
    assert _scheduled(d)["off"] == [] and len(_scheduled(d)["on"]) == 1


def check_volume_snapshot_scheduling(d, c):
    r = d.request("POST", "/1.0/storage-pools/default/volumes",
                  {"name": unique("v"), "type": "custom", "config": {"snapshots.schedule": "* * *"}})
    assert r.status == 400 and "snapshots.schedule" in r.json["error"], r.body
    assert len(_scheduled(d)["vol"]) == 1


def check_custom_volume_snapshot_expiry(d, c):
    import datetime
    v = unique("v")
    d.lxc("storage", "volume", "create", "default", v, "snapshots.expiry=3d")
    try:
        d.lxc("storage", "volume", "snapshot", "default", v, "s0")
        exp = d.get(f"/1.0/storage-pools/default/volumes/custom/{v}/snapshots/s0").metadata["expires_at"]
        left = datetime.datetime.fromisoformat(exp.replace("Z", "+00:00")) - datetime.datetime.now(datetime.timezone.utc)
        assert datetime.timedelta(days=2, hours=23) < left <= datetime.timedelta(days=3), exp
        r = d.request("PUT", f"/1.0/storage-pools/default/volumes/custom/{v}/snapshots/s0",
                      {"expires_at": "2040-01-02T03:04:05Z"})
        assert r.status == 200, r.body
        assert d.get(f"/1.0/storage-pools/default/volumes/custom/{v}/snapshots/s0").metadata["expires_at"] \
            == "2040-01-02T03:04:05Z"
    finally:
        d.lxc("storage", "volume", "delete", "default", v, check=False)


# ---- issue 10 walk: bridges, images, storage, projects --------------------------------------------

def _dnsmasq_args(bridge: str) -> list[str]:
    import os
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode() for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if args and os.path.basename(args[0]) == "dnsmasq" and f"--interface={bridge}" in args:
            return args
    return []


@contextlib.contextmanager
def _network(d, *keys):
    import os
    name = "xn" + os.urandom(4).hex()
    d.lxc("network", "create", name, "ipv4.address=auto", "ipv6.address=none", *keys)
    try:
        yield name
    finally:
        d.lxc("network", "delete", name, check=False)


def _nft(name: str) -> str:
    import subprocess
    return subprocess.run(["nft", "list", "table", "inet", f"corral-{name}"], capture_output=True, text=True).stdout


def check_network_dhcp_gateway(d, c):
    with _network(d, "ipv4.dhcp.gateway=192.0.2.254") as n:
        assert "--dhcp-option-force=3,192.0.2.254" in wait_for(lambda: _dnsmasq_args(n))
        r = d.request("PATCH", f"/1.0/networks/{n}", {"config": {"ipv4.dhcp.gateway": "nope"}})
        assert r.status == 400 and "ipv4.dhcp.gateway" in r.json["error"], r.body


def check_network_dns_search(d, c):
    with _network(d, "dns.search=example.com,example.org") as n:
        assert "--dhcp-option-force=119,example.com,example.org" in wait_for(lambda: _dnsmasq_args(n))


def check_network_firewall_filtering(d, c):
    with _network(d) as n:
        assert "udp dport 67 accept" in _nft(n)
        d.lxc("network", "set", n, "ipv4.firewall", "false")
        table = _nft(n)
        assert "udp dport 67" not in table and "masquerade" in table, table


def check_network_nat_address(d, c):
    with _network(d, "ipv4.nat=true", "ipv4.nat.address=192.0.2.7") as n:
        assert "snat ip to 192.0.2.7" in _nft(n)
        r = d.request("PATCH", f"/1.0/networks/{n}", {"config": {"ipv4.nat.address": "300.1.1.1"}})
        assert r.status == 400 and "ipv4.nat.address" in r.json["error"], r.body


def check_network_counters_errors_dropped(d, c):
    want = {"bytes_received", "bytes_sent", "packets_received", "packets_sent", "errors_received", "errors_sent",
            "packets_dropped_outbound", "packets_dropped_inbound"}
    assert set(d.get(f"/1.0/networks/{_bridge(d)}/state").metadata["counters"]) == want
    assert set(d.get(f"/1.0/instances/{c}/state").metadata["network"]["eth0"]["counters"]) == want


def check_image_profiles(d, c):
    fp = d.get("/1.0/images/aliases/busybox").metadata["target"]
    prof, c1, c2 = unique("ip"), unique("ipc"), unique("ipc")
    d.lxc("profile", "create", prof)
    try:
        d.lxc("profile", "set", prof, "user.from_image_profile", "yes")
        assert d.request("PATCH", f"/1.0/images/{fp}", {"profiles": ["default", prof]}).status == 200
        assert d.get(f"/1.0/images/{fp}").metadata["profiles"] == ["default", prof]
        d.lxc("init", "busybox", c1)
        assert d.get(f"/1.0/instances/{c1}").metadata["profiles"] == ["default", prof]
        d.lxc("init", "busybox", c2, "-p", "default")   # profiles given: the image's are not used
        assert d.get(f"/1.0/instances/{c2}").metadata["profiles"] == ["default"]
    finally:
        d.request("PATCH", f"/1.0/images/{fp}", {"profiles": ["default"]})
        d.lxc("delete", "-f", c1, check=False)
        d.lxc("delete", "-f", c2, check=False)
        d.lxc("profile", "delete", prof, check=False)


def check_storage_rsync_bwlimit(d, c):
    import os
    import shutil
    import tempfile
    import time
    p, base = unique("rp"), tempfile.mkdtemp(prefix="corral-rsync-", dir="/var/tmp")
    try:
        r = d.lxc("storage", "create", p, "dir", f"source={base}/pool", "rsync.bwlimit=lots", check=False)
        assert r.returncode != 0 and "rsync.bwlimit" in r.stderr
        d.lxc("storage", "create", p, "dir", f"source={base}/pool", "rsync.bwlimit=512")   # KiB/s
        d.lxc("storage", "volume", "create", p, "v1")
        with open(os.path.join(base, "pool", "custom", "default_v1", "blob"), "wb") as f:
            f.write(os.urandom(1024 * 1024))
        t = time.monotonic()
        d.lxc("storage", "volume", "copy", f"{p}/v1", f"{p}/v2")
        assert time.monotonic() - t >= 1.5
    finally:
        for v in ("v1", "v2"):
            d.lxc("storage", "volume", "delete", p, v, check=False)
        d.lxc("storage", "delete", p, check=False)
        shutil.rmtree(base, ignore_errors=True)


def check_projects_compression(d, c):
    with _project(d, {"backups.compression_algorithm": "none", "images.compression_algorithm": "xz"}) as p:
        r = _create(d, p)
        d.wait_op(r)
        name = r.json["metadata"]["resources"]["instances"][0].rsplit("/", 1)[1].split("?")[0]
        op(d, d.request("POST", f"/1.0/instances/{name}/backups?project={p}", {"name": "b"}))
        tar = d.get(f"/1.0/instances/{name}/backups/b/export?project={p}").body
        assert tar[257:262] == b"ustar", tar[:8]          # an uncompressed tarball
        meta = op(d, d.request("POST", f"/1.0/images?project={p}", {"source": {"type": "instance", "name": name}}))
        assert meta["status"] == "Success", meta["err"]
        fp = meta["metadata"]["fingerprint"]
        try:
            assert d.get(f"/1.0/images/{fp}/export?project={p}").body[:6] == b"\xfd7zXZ\x00"
        finally:
            d.request("DELETE", f"/1.0/images/{fp}?project={p}")



# ---- issue 10 walk: CORS, proxies, disks, tunnels -------------------------------------------------

def check_https_allowed_credentials(d, c):
    hdr = {"Origin": "https://ui.example"}
    try:
        assert d.request("PATCH", "/1.0", {"config": {"core.https_allowed_credentials": "true"}}).status == 200
        assert d.get("/1.0", headers=hdr).headers.get("Access-Control-Allow-Credentials") == "true"
        assert d.request("PATCH", "/1.0", {"config": {"core.https_allowed_credentials": "false"}}).status == 200
        assert d.get("/1.0", headers=hdr).headers.get("Access-Control-Allow-Credentials") is None
        r = d.request("PATCH", "/1.0", {"config": {"core.https_allowed_credentials": "maybe"}})
        assert r.status == 400 and "core.https_allowed_credentials" in r.json["error"], r.body
    finally:
        d.request("PATCH", "/1.0", {"config": {"core.https_allowed_credentials": ""}})


def check_proxy_tcp_udp_multi_port_handling(d, c):
    import socket
    _httpd(d, c)
    p1 = free_port()
    p2 = p1 + 1
    d.lxc("config", "device", "add", c, "pm", "proxy", f"listen=tcp:127.0.0.1:{p1}-{p2}",
          "connect=tcp:127.0.0.1:8080")
    try:
        for port in (p1, p2):
            assert b"hello-proxy" in _http_get(lambda: socket.create_connection(("127.0.0.1", port), timeout=5))
    finally:
        d.lxc("config", "device", "remove", c, "pm")
    r = d.lxc("config", "device", "add", c, "pm", "proxy", f"listen=tcp:127.0.0.1:{p1}-{p2}",
              "connect=tcp:127.0.0.1:8080-8082", check=False)
    assert r.returncode != 0, r.stdout


def check_proxy_unix_dac_properties(d, c):
    import os
    import stat
    _httpd(d, c)
    path = os.path.join(d.dir, unique("px") + ".sock")
    d.lxc("config", "device", "add", c, "pd", "proxy", f"listen=unix:{path}", "connect=tcp:127.0.0.1:8080",
          "uid=1234", "gid=2345", "mode=0640")
    try:
        st = wait_for(lambda: os.path.exists(path) and os.stat(path))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o640)
    finally:
        d.lxc("config", "device", "remove", c, "pd")


def check_container_disk_shift(d, c):
    import os
    import shutil
    import tempfile
    src = tempfile.mkdtemp(prefix="corral-shift-", dir="/var/tmp")
    os.chmod(src, 0o755)
    try:
        d.lxc("config", "device", "add", c, "sh", "disk", f"source={src}", "path=/mnt/sh", "shift=true")
        try:
            assert d.lxc("exec", c, "--", "stat", "-c", "%u", "/mnt/sh").stdout.strip() == "0"
            d.lxc("exec", c, "--", "touch", "/mnt/sh/made")
            assert os.stat(os.path.join(src, "made")).st_uid == 0    # root in the container is root here
        finally:
            d.lxc("config", "device", "remove", c, "sh")
    finally:
        shutil.rmtree(src, ignore_errors=True)


def check_network_vxlan_interface(d, c):
    import subprocess
    name = unique("ni")[:10]
    assert d.request("POST", "/1.0/networks", {"name": name, "config": {
        "ipv4.address": "none", "tunnel.t.protocol": "vxlan", "tunnel.t.id": "78", "tunnel.t.group": "239.0.0.9",
        "tunnel.t.interface": "lo"}}).status == 201
    try:
        out = subprocess.run(["ip", "-d", "link", "show", f"{name}-t"], capture_output=True, text=True).stdout
        assert "vxlan id 78" in out and "group 239.0.0.9" in out and "dev lo" in out, out
    finally:
        d.request("DELETE", f"/1.0/networks/{name}")



def check_container_copy_project(d, c):
    with _project(d, {}) as p:
        c2 = unique("cp")
        d.lxc("exec", c, "--", "sh", "-c", "echo across > /root/copied")
        d.lxc("copy", c, c2, "--target-project", p)
        d.lxc("start", c2, "--project", p)
        assert d.lxc("exec", c2, "--project", p, "--", "cat", "/root/copied").stdout.strip() == "across"
        assert d.get(f"/1.0/instances/{c2}").status == 404
        r = d.request("POST", f"/1.0/instances?project={p}", {"name": unique("cp"), "source": {
            "type": "copy", "source": c, "project": "no-such-project"}})
        assert r.status == 404, r.body


def check_cloud_init(d, c):
    d.lxc("config", "set", c, "cloud-init.user-data", "#cloud-config\nhostname: from-ext\n")
    try:
        keys = json.loads(_devlxd(d, c, "/1.0/config").split(b"\r\n\r\n", 1)[1])
        assert "/1.0/config/cloud-init.user-data" in keys, keys
        raw = _devlxd(d, c, "/1.0/config/cloud-init.user-data")
        assert raw.startswith(b"HTTP/1.0 200") and raw.split(b"\r\n\r\n", 1)[1] == \
            b"#cloud-config\nhostname: from-ext\n", raw
        r = d.request("PATCH", f"/1.0/instances/{c}", {"config": {"cloud-init.user-data": "#cloud-config\nnot yaml: ["}})
        assert r.status == 400 and "cloud-init.user-data" in r.json["error"], r.body
    finally:
        d.lxc("config", "unset", c, "cloud-init.user-data")



def check_network_nat_order(d, c):
    """LXD's nftables driver ignores the order (its rules are in a table of their own, always appended):
    the key is validated and NAT works with either value."""
    with _network(d, "ipv4.nat=true", "ipv4.nat.order=before") as n:
        assert "masquerade" in _nft(n)
        d.lxc("network", "set", n, "ipv4.nat.order", "after")
        assert "masquerade" in _nft(n)
        r = d.request("PATCH", f"/1.0/networks/{n}", {"config": {"ipv4.nat.order": "sideways"}})
        assert r.status == 400 and "ipv4.nat.order" in r.json["error"], r.body


def check_storage_btrfs_mount_options(d, c):
    import os
    p = unique("bt")
    d.lxc("storage", "create", p, "btrfs", "size=1GiB", "btrfs.mount_options=user_subvol_rm_allowed,noatime")
    try:
        target = os.path.join(d.dir, "storage-pools", p)

        def opts():
            with open("/proc/mounts") as f:
                for line in f:
                    parts = line.split()
                    if parts[1] == target:
                        return parts[3].split(",")
            return []
        assert "noatime" in opts() and "user_subvol_rm_allowed" in opts(), opts()
        d.lxc("storage", "set", p, "btrfs.mount_options", "user_subvol_rm_allowed,relatime")
        assert "relatime" in opts() and "noatime" not in opts(), opts()
    finally:
        d.lxc("storage", "delete", p, check=False)



def check_instance_project_move(d, c):
    with _project(d, {}) as p:
        with _container(d, start=False) as c2:
            d.lxc("snapshot", c2, "s0")
            d.lxc("file", "push", "-", f"{c2}/root/moved", input="with-me\n")
            r = d.lxc("move", c2, c2, "--target-project", p, check=False)
            assert r.returncode == 0, r.stderr
            assert d.get(f"/1.0/instances/{c2}").status == 404
            moved = d.get(f"/1.0/instances/{c2}?project={p}").metadata
            assert moved["project"] == p
            snaps = d.get(f"/1.0/instances/{c2}/snapshots?project={p}").metadata
            assert [u.split("?")[0].rsplit("/", 1)[1] for u in snaps] == ["s0"], snaps
            assert d.lxc("file", "pull", f"{c2}/root/moved", "-", "--project", p).stdout == "with-me\n"
            r = d.request("POST", f"/1.0/instances/{c2}?project={p}", {"name": c2, "project": "no-such"})
            assert r.status == 404, r.body



def check_storage_volume_project_move(d, c):
    with _project(d, {"features.storage.volumes": "true"}) as p:
        v = unique("mv")
        d.lxc("storage", "volume", "create", "default", v, "user.kept=yes")
        try:
            d.lxc("storage", "volume", "snapshot", "default", v, "s0")
            r = d.lxc("storage", "volume", "move", f"default/{v}", f"default/{v}", "--target-project", p,
                      check=False)
            assert r.returncode == 0, r.stderr
            assert d.get(f"/1.0/storage-pools/default/volumes/custom/{v}").status == 404
            moved = d.get(f"/1.0/storage-pools/default/volumes/custom/{v}?project={p}").metadata
            assert moved["config"]["user.kept"] == "yes" and moved["project"] == p
            snaps = d.get(f"/1.0/storage-pools/default/volumes/custom/{v}/snapshots?project={p}").metadata
            assert [u.split("?")[0].rsplit("/", 1)[1] for u in snaps] == ["s0"], snaps
        finally:
            d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v}/snapshots/s0?project={p}")
            d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v}?project={p}")
            d.lxc("storage", "volume", "delete", "default", v, check=False)


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}


def test_every_extension_has_a_check():
    assert sorted(CHECKS) == sorted(EXTENSIONS)


@pytest.mark.parametrize("name", EXTENSIONS)
def test_extension(ctx, name):
    d, c = ctx
    CHECKS[name](d, c)
