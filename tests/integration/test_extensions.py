"""Every API extension corrald advertises is exercised here (the list: corral/api/extensions.py)."""
import asyncio
import json

import pytest

from corral.api.extensions import EXTENSIONS
from helpers import unique

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
    assert res["status"] == "Success", res
    fp = res["metadata"]["fingerprint"]
    raw = d.get(f"/1.0/images/{fp}/export").body
    assert raw[:6] == b"\xfd7zXZ\x00"     # an xz stream
    d.wait_op(d.request("DELETE", f"/1.0/images/{fp}"))
    d.lxc("delete", c2)


def check_image_create_aliases(d, c):
    check_image_compression_algorithm(d, c)


def check_container_stateless_copy(d, c):
    c2 = unique("cp")
    res = op(d, d.request("POST", "/1.0/instances", {"name": c2, "source": {"type": "copy", "source": c}}))
    assert res["status"] == "Success", res
    d.lxc("delete", c2)


def check_container_only_migration(d, c):
    c2 = unique("cp")
    res = op(d, d.request("POST", "/1.0/instances", {"name": c2, "source": {"type": "copy", "source": c,
                                                                            "instance_only": True}}))
    assert res["status"] == "Success", res
    assert d.get(f"/1.0/instances/{c2}/snapshots").metadata == []
    d.lxc("delete", c2)


def check_instance_create_start(d, c):
    c2 = unique("st")
    res = op(d, d.request("POST", "/1.0/instances", {"name": c2, "start": True,
                                                     "source": {"type": "image", "alias": "busybox"}}))
    assert res["status"] == "Success", res
    assert d.get(f"/1.0/instances/{c2}").metadata["status"] == "Running"
    d.lxc("delete", "-f", c2)


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}


def test_every_extension_has_a_check():
    assert sorted(CHECKS) == sorted(EXTENSIONS)


@pytest.mark.parametrize("name", EXTENSIONS)
def test_extension(ctx, name):
    d, c = ctx
    CHECKS[name](d, c)
