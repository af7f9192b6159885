"""Every API extension corrald advertises is exercised here (the list lives in corral/api/extensions.py)."""
import json
import socket
import base64
import os

from corral.api.extensions import EXTENSIONS
from helpers import unique


def _ws_first_message(daemon, path: str, trigger) -> dict:
    """Open a websocket on the unix socket, run trigger(), return the first message."""
    import asyncio
    import aiohttp

    async def go():
        conn = aiohttp.UnixConnector(path=daemon.socket)
        async with aiohttp.ClientSession(connector=conn) as s:
            async with s.ws_connect(f"http://localhost{path}") as ws:
                await asyncio.sleep(0.1)
                await asyncio.to_thread(trigger)
                msg = await ws.receive(timeout=10)
                return json.loads(msg.data)
    return asyncio.run(go())


def check_etag(d):
    assert d.get("/1.0/profiles/default").headers.get("ETag")


def check_patch(d):
    assert d.request("PATCH", "/1.0/profiles/default", {"config": {}}).status == 200


def check_profile_usedby(d):
    assert "used_by" in d.get("/1.0/profiles/default").metadata


def check_entity_description(d):
    assert "description" in d.get("/1.0/profiles/default").metadata


def _operation_api() -> dict:
    import asyncio
    from corral.events import EventHub
    from corral.operations import OperationManager

    async def go():
        op = OperationManager(EventHub(location="none")).create(description="Checking")
        api = op.to_api()
        op.finish()
        return api
    return asyncio.run(go())


def check_operation_description(d):
    assert _operation_api()["description"] == "Checking"


def _lifecycle(d):
    name = unique("ext")
    ev = _ws_first_message(d, "/1.0/events?type=lifecycle",
                           lambda: d.request("POST", "/1.0/profiles", {"name": name}))
    d.request("DELETE", f"/1.0/profiles/{name}")
    return ev


def check_event_lifecycle(d):
    assert _lifecycle(d)["metadata"]["action"] == "profile-created"


def check_event_lifecycle_requestor_address(d):
    assert _lifecycle(d)["metadata"]["requestor"]["address"] == "@"


def check_event_location(d):
    assert _lifecycle(d)["location"] == "none"


def check_event_project(d):
    assert _lifecycle(d)["project"] == "default"


def check_resources(d):
    assert "memory" in d.get("/1.0/resources").metadata


def check_resources_cpu_socket(d):
    assert "sockets" in d.get("/1.0/resources").metadata["cpu"]


def check_resources_system(d):
    assert "system" in d.get("/1.0/resources").metadata


def check_projects(d):
    assert d.get("/1.0/projects/default").status == 200


def check_warnings(d):
    assert d.get("/1.0/warnings?recursion=1").status == 200


def check_api_os(d):
    env = d.get("/1.0").metadata["environment"]
    assert env["os_name"] and "os_version" in env


def check_operation_location(d):
    assert _operation_api()["location"] == "none"


CHECKS = {name[len("check_"):]: fn for name, fn in globals().items() if name.startswith("check_")}


def test_every_extension_has_a_check():
    assert sorted(CHECKS) == sorted(EXTENSIONS)


def test_extensions_behave(daemon):
    for name in EXTENSIONS:
        CHECKS[name](daemon)
