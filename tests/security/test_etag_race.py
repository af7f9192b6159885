"""Issue 9, finding 7: ETags were not atomic. Two PUTs sent at once with the same If-Match both
succeeded and one update was silently lost. Now the If-Match comparison and the write are one step
under the object's lock: exactly one PUT wins, the other gets 412, and the stored value is the
winner's. Two PATCHes without If-Match racing on different keys both land (each merges onto the
latest stored state)."""
from __future__ import annotations

import json
import threading

import pytest

from helpers import UnixConn, unique

TRIES = 30


class Kind:
    """One kind of object: how to make it, PUT a value into it, read the value back, remove it."""

    def __init__(self, host):
        self.host = host

    def setup(self) -> None: ...

    def cleanup(self) -> None: ...

    path = ""

    def put_body(self, current: dict, value: str) -> dict:
        return {"config": {**current["config"], "user.race": value}, "description": current.get("description", "")}

    def value(self, current: dict, key: str = "user.race") -> str | None:
        return current["config"].get(key)


class Server(Kind):
    path = "/1.0"

    def setup(self):
        self.saved = self.host.get("/1.0").metadata["config"]

    def put_body(self, current, value):
        return {"config": {**current["config"], "user.race": value}}

    def cleanup(self):
        cur = self.host.get("/1.0").metadata["config"]
        self.host.request("PUT", "/1.0", {"config": {k: v for k, v in cur.items() if not k.startswith("user.")}})


class Profile(Kind):
    def setup(self):
        self.name = unique("race")
        self.path = f"/1.0/profiles/{self.name}"
        assert self.host.request("POST", "/1.0/profiles", {"name": self.name}).status == 201

    def put_body(self, current, value):
        return {"config": {**current["config"], "user.race": value}, "description": current["description"],
                "devices": current["devices"]}

    def cleanup(self):
        self.host.request("DELETE", self.path)


class Instance(Kind):
    def setup(self):
        self.name = unique("race")
        self.path = f"/1.0/instances/{self.name}"
        self.host.lxc("init", "busybox", self.name)

    def put_body(self, current, value):
        return {k: current[k] for k in ("architecture", "devices", "ephemeral", "profiles", "description")} | \
            {"config": {**current["config"], "user.race": value}}

    def cleanup(self):
        self.host.lxc("delete", "-f", self.name, check=False)


class RunningInstance(Instance):
    def setup(self):
        self.name = unique("race")
        self.path = f"/1.0/instances/{self.name}"
        self.host.lxc("launch", "busybox", self.name)


class Volume(Kind):
    def setup(self):
        self.name = unique("race")
        self.path = f"/1.0/storage-pools/default/volumes/custom/{self.name}"
        r = self.host.request("POST", "/1.0/storage-pools/default/volumes/custom", {"name": self.name, "config": {}})
        assert r.status in (200, 201, 202), r.body

    def cleanup(self):
        self.host.request("DELETE", self.path)


class Network(Kind):
    def setup(self):
        self.name = unique("rc")[:12]
        self.path = f"/1.0/networks/{self.name}"
        r = self.host.request("POST", "/1.0/networks", {"name": self.name, "type": "bridge", "config": {
            "ipv4.address": "none", "ipv6.address": "none"}})
        assert r.status == 201, r.body

    def cleanup(self):
        self.host.request("DELETE", self.path)


class Project(Kind):
    def setup(self):
        self.name = unique("race")
        self.path = f"/1.0/projects/{self.name}"
        assert self.host.request("POST", "/1.0/projects", {"name": self.name}).status == 201

    def cleanup(self):
        self.host.request("DELETE", self.path)


KINDS = {"server": Server, "profile": Profile, "instance": Instance, "running-instance": RunningInstance,
         "volume": Volume, "network": Network,
         "project": Project}


def _concurrent(host, requests: list[tuple[str, str, dict, dict]]) -> list[tuple[int, dict]]:
    """Send the requests at the same moment, each on its own unix-socket connection."""
    conns = [UnixConn(host.socket, timeout=60) for _ in requests]
    for c in conns:
        c.connect()
    barrier = threading.Barrier(len(requests))
    out: list = [None] * len(requests)

    def send(i):
        method, path, body, headers = requests[i]
        data = json.dumps(body).encode()
        barrier.wait()
        conns[i].request(method, path, body=data, headers={"Content-Type": "application/json", **headers})
        r = conns[i].getresponse()
        out[i] = (r.status, json.loads(r.read()))
        conns[i].close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(o is not None for o in out), "a request did not finish"
    return out


def _settle(host, status: int, body: dict) -> int:
    """An instance PUT answers 202 with an operation: its outcome is the update's."""
    if status == 202:
        op = host.get(f"{body['operation']}/wait?timeout=60", timeout=65).metadata
        assert op["status"] == "Success", op
        return 200
    return status


@pytest.mark.parametrize("kind", list(KINDS))
def test_concurrent_if_match_puts_one_wins_one_412(host, kind):
    k = KINDS[kind](host)
    k.setup()
    try:
        for i in range(TRIES):
            r = host.get(k.path)
            assert r.status == 200, r.body
            etag, current = r.headers["ETag"], r.metadata
            values = [f"a{i}", f"b{i}"]
            res = _concurrent(host, [("PUT", k.path, k.put_body(current, v), {"If-Match": etag}) for v in values])
            statuses = [_settle(host, s, b) for s, b in res]
            assert sorted(statuses) == [200, 412], (i, res)
            loser = res[statuses.index(412)][1]
            assert "ETag" in loser["error"] or "etag" in loser["error"].lower(), loser
            winner = values[statuses.index(200)]
            assert k.value(host.get(k.path).metadata) == winner, i
    finally:
        k.cleanup()


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "server"] + ["server"])
def test_concurrent_patches_without_if_match_both_land(host, kind):
    k = KINDS[kind](host)
    k.setup()
    try:
        for i in range(10):
            res = _concurrent(host, [("PATCH", k.path, {"config": {key: str(i)}}, {})
                                     for key in ("user.left", "user.right")])
            assert [s for s, _ in res] == [200, 200], res
            cur = host.get(k.path).metadata
            assert (k.value(cur, "user.left"), k.value(cur, "user.right")) == (str(i), str(i)), (i, cur["config"])
    finally:
        k.cleanup()
