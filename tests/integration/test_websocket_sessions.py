"""The websocket transport of exec and console (corral/api/websockets.py) over the unix socket:
secrets, a second connection of an exec stream, the console's data and control messages, and the
typed exec/console request fields refused with LXD's decoding texts."""
import asyncio
import json

import aiohttp
import pytest

from helpers import unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def running(host):
    name = unique("ws")
    host.lxc("launch", "busybox", name)
    yield host, name
    host.lxc("delete", "-f", name, check=False)


def test_exec_secrets_and_second_connection(running):
    host, name = running
    r = host.request("POST", f"/1.0/instances/{name}/exec", {"command": ["cat"], "wait-for-websocket": True})
    assert r.status == 202
    fds, opurl = r.json["metadata"]["metadata"]["fds"], r.json["operation"]
    assert set(fds) == {"0", "1", "2", "control"}

    async def go():
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=host.socket)) as s:
            bad = await s.get(f"http://localhost{opurl}/websocket?secret=nope")
            assert bad.status == 403 and (await bad.json())["error"] == "Invalid websocket secret"
            socks = {k: await s.ws_connect(f"http://localhost{opurl}/websocket?secret={fds[k]}") for k in ("0", "1", "2")}
            again = await s.get(f"http://localhost{opurl}/websocket?secret={fds['1']}")
            assert again.status == 400 and (await again.json())["error"] == "This websocket is already connected"
            await socks["0"].send_bytes(b"through cat\n")
            await socks["0"].send_bytes(b"")         # EOF on stdin
            out = b""
            async for msg in socks["1"]:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    break
                out += msg.data
            return out
    assert asyncio.run(go()) == b"through cat\n"
    res = host.get(f"{opurl}/wait?timeout=10").metadata
    assert res["status"] == "Success" and res["metadata"]["return"] == 0


def test_console_data_and_control_messages(running):
    host, name = running
    r = host.request("POST", f"/1.0/instances/{name}/console", {"width": 100, "height": 30})
    assert r.status == 202
    fds, opurl = r.json["metadata"]["metadata"]["fds"], r.json["operation"]
    marker = unique("console-mark")

    async def go():
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=host.socket)) as s:
            control = await s.ws_connect(f"http://localhost{opurl}/websocket?secret={fds['control']}")
            data = await s.ws_connect(f"http://localhost{opurl}/websocket?secret={fds['0']}")
            await control.send_str(json.dumps({"command": "window-resize", "args": {"width": "120", "height": "40"}}))
            await control.send_str("not json")      # skipped, the session goes on
            await asyncio.to_thread(host.lxc, "exec", name, "--", "sh", "-c", f"echo {marker} > /dev/console")
            seen = b""
            while marker.encode() not in seen:
                msg = await asyncio.wait_for(data.receive(), 10)
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                seen += msg.data
            await data.close()
            await control.close()
    asyncio.run(go())
    assert host.get(f"{opurl}/wait?timeout=10").metadata["status"] == "Success"
    assert marker in host.get(f"/1.0/instances/{name}/console").body.decode(errors="replace")


@pytest.mark.parametrize("path,body,text", [
    ("exec", {"command": "ls"},
     "json: cannot unmarshal string into Go struct field InstanceExecPost.command of type []string"),
    ("exec", {"command": ["ls"], "width": "80"},
     "json: cannot unmarshal string into Go struct field InstanceExecPost.width of type int"),
    ("exec", {"command": ["ls"], "user": -1},
     "json: cannot unmarshal number -1 into Go struct field InstanceExecPost.user of type uint32"),
    ("exec", {"command": []}, "Command must be a non-empty array of strings"),
    ("console", {"type": 1}, "json: cannot unmarshal number into Go struct field InstanceConsolePost.type of type string"),
    ("console", {"type": "vga"}, 'Unknown console type "vga"'),
])
def test_bad_requests_start_nothing(running, path, body, text):
    host, name = running
    before = {op for ops in host.get("/1.0/operations").metadata.values() for op in ops}
    r = host.request("POST", f"/1.0/instances/{name}/{path}", body)
    assert r.status == 400 and r.json["error"] == text, r.json
    assert {op for ops in host.get("/1.0/operations").metadata.values() for op in ops} == before
