"""Instance commands against the fake server: list, launch/init, state
changes, delete, info, snapshot/restore, copy/move/rename, publish."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_cli_fakeserver import fake, run, sync  # noqa: E402,F401


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def test_list_default_columns(fake, run):
    fake.add_instance("c2", status="Stopped")
    fake.add_instance("c1", ephemeral=True, snapshots=[{"name": "s0"}])
    assert run("list").stdout == (
        "+------+---------+----------------------+----------------+-----------------------+-----------+\n"
        "| NAME |  STATE  |         IPV4         |      IPV6      |         TYPE          | SNAPSHOTS |\n"
        "+------+---------+----------------------+----------------+-----------------------+-----------+\n"
        "| c1   | RUNNING | 10.166.11.128 (eth0) | fd42::1 (eth0) | CONTAINER (EPHEMERAL) | 1         |\n"
        "+------+---------+----------------------+----------------+-----------------------+-----------+\n"
        "| c2   | STOPPED |                      |                | CONTAINER             | 0         |\n"
        "+------+---------+----------------------+----------------+-----------------------+-----------+\n"
    )
    assert fake.find("GET", "/1.0/instances")[-1].query == {"recursion": "2"}


def test_list_columns_and_formats(fake, run):
    fake.add_instance("c1")
    assert run("list", "-c", "nsNpPmlcafb", "-f", "csv").stdout == (
        "c1,RUNNING,3,13928,default,824.00KiB,2026/11/21 13:03 UTC,2026/11/21 13:03 UTC,x86_64,ec29b117accc,default\n"
    )
    assert run("list", "-c", "n,image.os:OS,devices:root.pool:POOL", "-f", "csv").stdout == "c1,Busybox,default\n"
    header = run("list", "-c", "n,image.os:OS").stdout.splitlines()[1]
    assert header == "| NAME |   OS    |"
    data = json.loads(run("list", "-f", "json").stdout)
    assert data[0]["name"] == "c1" and data[0]["state"]["pid"] == 13928
    yml = run("list", "--format", "yaml").stdout
    assert "  created_at: 2026-11-21T13:03:34.614456683Z\n" in yml
    assert "  backups: []\n" in yml
    result = run("list", "-c", "nZ")
    assert (result.exit_code, result.stderr) == (1, "Error: Unknown column shorthand char 'Z' in 'nZ'\n")


def test_list_filters(fake, run):
    fake.add_instance("web1")
    fake.add_instance("db1", status="Stopped")
    assert run("list", "web", "-c", "n", "-f", "csv").stdout == "web1\n"
    assert run("list", "status=stopped", "-c", "n", "-f", "csv").stdout == "db1\n"


def _create_route(fake, name="n1"):
    def create(req):
        data = req.json
        fake.add_instance(data.get("name") or name, status="Stopped")
        return fake.async_response(description="Creating instance",
                                   resources={"instances": [f"/1.0/instances/{data.get('name') or name}"]})

    fake.route("POST", "/1.0/instances", create)
    fake.route("GET", "/1.0/images/aliases/busybox",
               lambda req: sync({"name": "busybox", "target": "ec29b117", "description": "", "type": "container"}))


def test_launch_sends_lxd_request(fake, run):
    _create_route(fake)
    result = run("launch", "busybox", "c1", "-p", "default", "-p", "extra", "-c", "limits.memory=256MiB",
                 "-e", "-s", "pool1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Creating c1\nStarting c1\n"
    req = fake.find("POST", "/1.0/instances")[-1].json
    assert req == {
        "name": "c1",
        "source": {"type": "image", "alias": "busybox"},
        "config": {"limits.memory": "256MiB"},
        "devices": {"root": {"type": "disk", "path": "/", "pool": "pool1"}},
        "profiles": ["default", "extra"],
        "ephemeral": True,
        "type": "container",
    }
    state = fake.find("PUT", "/1.0/instances/c1/state")[-1].json
    assert state == {"action": "start", "timeout": -1, "force": False, "stateful": False}


def test_init_vm_without_name_and_fingerprint(fake, run):
    _create_route(fake, name="happy-cat")
    fake.route("GET", "/1.0/images/ec29", lambda req: sync({"fingerprint": "ec29b117accc"}))
    result = run("init", "ec29", "--vm", "--no-profiles")
    assert result.stdout == "Creating the instance\nInstance name is: happy-cat\n"
    req = fake.find("POST", "/1.0/instances")[-1].json
    assert req["source"] == {"type": "image", "fingerprint": "ec29b117accc"}
    assert req["type"] == "virtual-machine" and req["profiles"] == []
    assert not fake.find("PUT", "/1.0/instances/happy-cat/state")


def test_launch_failure_suggests_log(fake, run):
    _create_route(fake)
    fake.route("PUT", "/1.0/instances/c1/state",
               lambda req: fake.async_response(status="Failure", err="Failed to run: boom"))
    result = run("launch", "busybox", "c1")
    assert result.exit_code == 1
    assert result.stderr == "Error: Failed to run: boom\nTry `corral info --show-log c1` for more info\n"


def test_start_stop_restart_pause(fake, run):
    fake.add_instance("c1", status="Stopped")
    fake.add_instance("c2", status="Stopped")
    assert run("start", "c1", "c2").exit_code == 0
    assert [r.json["action"] for r in fake.requests if r.method == "PUT"] == ["start", "start"]
    assert run("stop", "c1", "-f", "--timeout", "30").exit_code == 0
    assert fake.find("PUT", "/1.0/instances/c1/state")[-1].json == {
        "action": "stop", "timeout": 30, "force": True, "stateful": False}
    assert run("restart", "c2").exit_code == 0
    assert run("pause", "c2").exit_code == 0
    assert fake.find("PUT", "/1.0/instances/c2/state")[-1].json["action"] == "freeze"
    assert run("start", "c2").exit_code == 0  # frozen -> unfreeze
    assert fake.find("PUT", "/1.0/instances/c2/state")[-1].json["action"] == "unfreeze"
    assert run("stop", "--all").exit_code == 0


def test_batch_failures(fake, run):
    fake.add_instance("c1")
    result = run("stop", "c1", "nope")
    assert result.exit_code == 1
    assert result.stderr == "nope: error: Instance not found\n\nError: Some instances failed to stop\n"


def test_delete(fake, run):
    fake.add_instance("c1")
    fake.add_instance("c2", status="Stopped")
    result = run("delete", "c1")
    assert (result.exit_code, result.stderr) == (
        1, "Error: The instance is currently running, stop it first or pass --force\n")
    assert run("delete", "c2").exit_code == 0
    assert "c2" not in fake.instances
    assert run("rm", "-f", "c1").exit_code == 0
    assert fake.find("PUT", "/1.0/instances/c1/state")[-1].json["force"] is True
    assert "c1" not in fake.instances
    fake.add_instance("c3", status="Stopped")
    fake.route("DELETE", "/1.0/instances/c3/snapshots/s0", lambda req: fake.async_response())
    assert run("delete", "c3/s0").exit_code == 0


def test_instance_info(fake, run):
    fake.add_instance("c1", snapshots=[{"name": "s0", "created_at": "2026-11-21T13:56:47Z",
                                        "expires_at": "0001-01-01T00:00:00Z", "stateful": False}])
    out = run("info", "c1").stdout
    assert out.startswith("Name: c1\nStatus: RUNNING\nType: container\nArchitecture: x86_64\nPID: 13928\n"
                          "Created: 2026/11/21 13:03 UTC\nLast Used: 2026/11/21 13:03 UTC\n\nResources:\n"
                          "  Processes: 3\n  CPU usage:\n    CPU usage (in seconds): 0\n  Memory usage:\n"
                          "    Memory (current): 824.00KiB\n    Memory (peak): 2.15MiB\n  Network usage:\n"
                          "    eth0:\n      Type: broadcast\n      State: UP\n")
    assert "        inet:  10.166.11.128/24 (global)\n" in out
    assert out.endswith("\nSnapshots:\n+------+----------------------+------------+----------+\n"
                        "| NAME |       TAKEN AT       | EXPIRES AT | STATEFUL |\n"
                        "+------+----------------------+------------+----------+\n"
                        "| s0   | 2026/11/21 13:56 UTC |            | NO       |\n"
                        "+------+----------------------+------------+----------+\n")
    fake.route("GET", "/1.0/instances/c1/logs/lxc.log", lambda req: (200, b"log line\n"))
    assert run("info", "c1", "--show-log").stdout.endswith("\nLog:\n\nlog line\n\n")


def test_snapshot_restore(fake, run):
    fake.add_instance("c1")
    fake.route("POST", "/1.0/instances/c1/snapshots", lambda req: fake.async_response())
    assert run("snapshot", "c1", "snap1", "--stateful").exit_code == 0
    assert fake.find("POST", "/1.0/instances/c1/snapshots")[-1].json == {"stateful": True, "name": "snap1"}
    assert run("snapshot", "c1").exit_code == 0
    assert fake.find("POST", "/1.0/instances/c1/snapshots")[-1].json == {"stateful": False}
    assert run("restore", "c1", "snap1").exit_code == 0
    assert fake.find("PUT", "/1.0/instances/c1")[-1].json == {"restore": "snap1", "stateful": False}


def test_copy_move_rename(fake, run):
    fake.add_instance("c1", status="Stopped")
    fake.instances["c1"]["config"]["volatile.eth0.hwaddr"] = "00:16:3e:00:00:01"
    fake.route("POST", "/1.0/instances", lambda req: fake.async_response())
    assert run("copy", "c1", "c2", "-c", "user.a=b", "--instance-only").exit_code == 0
    req = fake.find("POST", "/1.0/instances")[-1].json
    assert req["name"] == "c2"
    assert req["source"]["type"] == "copy" and req["source"]["source"] == "c1"
    assert req["source"]["instance_only"] is True
    assert req["config"] == {"image.os": "Busybox", "user.a": "b"}  # volatile keys dropped
    fake.route("POST", "/1.0/instances/c1", lambda req: fake.async_response())
    assert run("move", "c1", "c9").exit_code == 0
    assert fake.find("POST", "/1.0/instances/c1")[-1].json == {"name": "c9"}
    assert run("rename", "c1", "c8").exit_code == 0
    fake.route("POST", "/1.0/instances/c1/snapshots/s0", lambda req: fake.async_response())
    assert run("mv", "c1/s0", "c1/s1").exit_code == 0
    assert fake.find("POST", "/1.0/instances/c1/snapshots/s0")[-1].json == {"name": "s1"}


def test_publish(fake, run):
    fake.add_instance("c1")
    result = run("publish", "c1")
    assert result.stderr == "Error: The instance is currently running. Use --force to have it stopped and restarted\n"
    fake.route("POST", "/1.0/images", lambda req: fake.async_response(metadata={"fingerprint": "abc123", "size": 5}))
    fake.route("GET", "/1.0/images/aliases/img1", lambda req: (404, {"type": "error", "error": "not found",
                                                                     "error_code": 404}))
    fake.route("POST", "/1.0/images/aliases", lambda req: (200, {"type": "sync", "metadata": None}))
    result = run("publish", "c1", "--force", "--alias", "img1", "--compression", "none", "os=busybox")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Instance published with fingerprint: abc123\n"
    req = fake.find("POST", "/1.0/images")[-1].json
    assert req == {"source": {"type": "instance", "name": "c1"}, "public": False,
                   "properties": {"os": "busybox"}, "compression_algorithm": "none"}
    actions = [r.json["action"] for r in fake.find("PUT", "/1.0/instances/c1/state")]
    assert actions == ["stop", "start"]
    assert fake.find("POST", "/1.0/images/aliases")[-1].json == {"name": "img1", "description": "",
                                                                  "target": "abc123"}
