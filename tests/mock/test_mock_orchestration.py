"""Custom volumes, profiles, projects, operations and events on the mock mode (tests/mockd.py):
the orchestration layer without root."""
import asyncio
import json
import os

import yaml

from helpers import unique
from mockd import MockCorrald


def op_ok(d, resp) -> dict:
    assert resp.status == 202, resp.body
    meta = d.wait_op(resp, timeout=30)
    assert meta["status"] == "Success", meta
    return meta


def events_during(d, trigger, count: int, types: str = "lifecycle", project: str = "") -> list[dict]:
    """Open /1.0/events over the unix socket, run trigger(), collect `count` messages."""
    import aiohttp

    async def go():
        conn = aiohttp.UnixConnector(path=d.socket)
        async with aiohttp.ClientSession(connector=conn) as s:
            q = f"?type={types}" + (f"&project={project}" if project else "")
            async with s.ws_connect(f"http://localhost/1.0/events{q}") as ws:
                await asyncio.sleep(0.1)
                await asyncio.to_thread(trigger)
                return [json.loads((await ws.receive(timeout=10)).data) for _ in range(count)]
    return asyncio.run(go())


def test_custom_volumes_create_snapshot_copy_delete(mock_host):
    d = mock_host
    v, v2 = unique("v"), unique("w")
    d.lxc("storage", "volume", "create", "default", v, "user.k=1")
    path = os.path.join(d.dir, "storage-pools", "default", "custom", f"default_{v}")
    assert os.path.isdir(path)
    with open(os.path.join(path, "f"), "w") as f:
        f.write("one")
    d.lxc("storage", "volume", "snapshot", "default", v, "snap0")
    snaps = d.get(f"/1.0/storage-pools/default/volumes/custom/{v}/snapshots").metadata
    assert snaps == [f"/1.0/storage-pools/default/volumes/custom/{v}/snapshots/snap0"]
    with open(os.path.join(path, "f"), "w") as f:
        f.write("two")
    d.lxc("storage", "volume", "restore", "default", v, "snap0")
    with open(os.path.join(path, "f")) as f:
        assert f.read() == "one"
    d.lxc("storage", "volume", "copy", f"default/{v}", f"default/{v2}")
    got = d.get(f"/1.0/storage-pools/default/volumes/custom/{v2}").metadata
    assert got["config"].get("user.k") == "1"
    with open(os.path.join(d.dir, "storage-pools", "default", "custom", f"default_{v2}", "f")) as f:
        assert f.read() == "one"

    # attached to an instance: used_by, and a volume in use cannot be deleted
    name = unique("i")
    d.lxc("launch", "busybox", name)
    d.lxc("storage", "volume", "attach", "default", v, name, "/data")
    assert d.get(f"/1.0/storage-pools/default/volumes/custom/{v}").metadata["used_by"] == [f"/1.0/instances/{name}"]
    r = d.request("DELETE", f"/1.0/storage-pools/default/volumes/custom/{v}")
    assert r.status == 400, r.body
    d.lxc("delete", "--force", name)

    for vol in (v, v2):
        d.lxc("storage", "volume", "delete", "default", vol)
        assert d.get(f"/1.0/storage-pools/default/volumes/custom/{vol}").status == 404
    assert not os.path.exists(path)
    assert d.lxc("storage", "volume", "delete", "default", v, check=False).returncode != 0


def test_profiles_create_apply_edit_delete(mock_host):
    d = mock_host
    prof, name = unique("pr"), unique("i")
    d.lxc("profile", "create", prof)
    d.lxc("profile", "set", prof, "limits.memory", "64MiB")
    d.lxc("launch", "busybox", name, "-p", "default", "-p", prof)
    inst = d.get(f"/1.0/instances/{name}").metadata
    assert inst["profiles"] == ["default", prof]
    assert inst["expanded_config"]["limits.memory"] == "64MiB"
    assert d.get(f"/1.0/profiles/{prof}").metadata["used_by"] == [f"/1.0/instances/{name}"]

    # an edit reaches the instance using the profile
    text = d.lxc("profile", "show", prof).stdout
    doc = yaml.safe_load(text)
    doc["config"]["limits.memory"] = "128MiB"
    doc["config"]["user.note"] = "edited"
    d.lxc("profile", "edit", prof, input=yaml.safe_dump(doc))
    exp = d.get(f"/1.0/instances/{name}").metadata["expanded_config"]
    assert exp["limits.memory"] == "128MiB" and exp["user.note"] == "edited"
    # a bad value is refused and changes nothing
    res = d.lxc("profile", "set", prof, "limits.memory", "lots", check=False)
    assert res.returncode != 0
    assert d.get(f"/1.0/profiles/{prof}").metadata["config"]["limits.memory"] == "128MiB"
    # a device on a pool that does not exist is refused (the device registry validates profiles)
    r = d.request("PATCH", f"/1.0/profiles/{prof}",
                  {"devices": {"d": {"type": "disk", "pool": "nosuchpool", "source": "v", "path": "/d"}}})
    assert r.status == 400 and "nosuchpool" in r.json["error"]

    r = d.request("DELETE", f"/1.0/profiles/{prof}")
    assert r.status == 400, r.body   # in use
    d.lxc("profile", "remove", name, prof)
    assert "limits.memory" not in d.get(f"/1.0/instances/{name}").metadata["expanded_config"]
    d.lxc("profile", "delete", prof)
    assert d.get(f"/1.0/profiles/{prof}").status == 404
    d.lxc("delete", "--force", name)


def test_projects_basics(mock_host):
    d = mock_host
    proj, name = unique("pj"), unique("i")
    d.lxc("project", "create", proj, "-c", "features.images=false", "-c", "features.profiles=false",
          "-c", "limits.instances=1")
    assert proj in [p.rsplit("/", 1)[1] for p in d.get("/1.0/projects").metadata]
    d.lxc("launch", "busybox", name, "--project", proj)
    assert d.get(f"/1.0/instances?project={proj}").metadata == [f"/1.0/instances/{name}?project={proj}"]
    assert d.get(f"/1.0/instances/{name}").status == 404   # not in default
    # limits.instances=1: a second one is refused
    res = d.lxc("init", "busybox", unique("j"), "--project", proj, check=False)
    assert res.returncode != 0 and "maximum number of instances" in res.stderr, res.stderr
    used = d.get(f"/1.0/projects/{proj}").metadata["used_by"]
    assert f"/1.0/instances/{name}?project={proj}" in used
    r = d.request("DELETE", f"/1.0/projects/{proj}")
    assert r.status == 400, r.body   # not empty
    d.lxc("delete", "--force", name, "--project", proj)
    d.lxc("project", "delete", proj)
    assert d.get(f"/1.0/projects/{proj}").status == 404


def test_operations_and_events(mock_host):
    d = mock_host
    name = unique("ev")
    holder = {}

    def create():
        holder["resp"] = d.request("POST", "/1.0/instances",
                                   {"name": name, "source": {"type": "image", "alias": "busybox"}})
        d.wait_op(holder["resp"], timeout=30)
    events = events_during(d, create, 1)
    assert events[0]["type"] == "lifecycle"
    assert events[0]["metadata"]["action"] == "instance-created"
    assert events[0]["metadata"]["source"] == f"/1.0/instances/{name}"

    op_url = holder["resp"].json["operation"]
    op = d.get(op_url).metadata
    assert op["status"] == "Success" and op["resources"]["instances"] == [f"/1.0/instances/{name}"]
    assert op["description"] == "Creating instance"

    # operation events: the start's operation goes running -> success
    def start():
        op_ok(d, d.request("PUT", f"/1.0/instances/{name}/state", {"action": "start"}))
    ops = events_during(d, start, 2, types="operation")
    assert [e["metadata"]["status"] for e in ops][-1] in ("Running", "Success")
    assert all(e["metadata"]["description"] == "Starting instance" for e in ops)

    # a failed operation reports its error and the instance is unchanged
    r = d.request("PUT", f"/1.0/instances/{name}/state", {"action": "unfreeze"})
    meta = d.wait_op(r, timeout=30)
    assert meta["status"] == "Failure" and "isn't paused" in meta["err"]
    assert d.get(f"/1.0/instances/{name}/state").metadata["status"] == "Running"
    d.lxc("delete", "--force", name)


def test_restart_keeps_the_records():
    """The database survives a restart of the mock daemon; the fake driver's power state does not
    (it is in memory): at start-up the daemon starts again what LXD's rule says (boot.autostart=true,
    or unset and running before)."""
    d = MockCorrald()
    try:
        d.start()
        assert d.request("POST", "/1.0/storage-pools", {"name": "default", "driver": "dir"}).status == 201
        r = d.request("PATCH", "/1.0/profiles/default",
                      {"devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}})
        assert r.status == 200, r.body
        a, b, c, e = unique("a"), unique("b"), unique("c"), unique("e")
        d.lxc("launch", "--empty", a, "-c", "boot.autostart=true")
        d.lxc("init", "--empty", b)
        d.lxc("launch", "--empty", c, "-c", "boot.autostart=false")
        d.lxc("launch", "--empty", e)
        d.lxc("snapshot", b, "s0")
        assert d.stop() == 0
        d.start()
        assert d.get(f"/1.0/instances/{a}/state").metadata["status"] == "Running"
        assert d.get(f"/1.0/instances/{e}/state").metadata["status"] == "Running"
        for stopped in (b, c):
            assert d.get(f"/1.0/instances/{stopped}/state").metadata["status"] == "Stopped"
        assert d.get(f"/1.0/instances/{b}/snapshots").metadata == [f"/1.0/instances/{b}/snapshots/s0"]
        assert d.get("/1.0/storage-pools/default").metadata["used_by"] == [
            *sorted(f"/1.0/instances/{n}" for n in (a, b, c, e)), "/1.0/profiles/default"]
    finally:
        d.cleanup()
