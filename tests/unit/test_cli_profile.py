"""`corral profile ...` against the fake server."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_cli_fakeserver import fake, run  # noqa: E402,F401


def test_profile_list_formats(fake, run):
    fake.profiles["b-prof"] = {"config": {}, "description": "", "devices": {}, "name": "b-prof", "used_by": []}
    table = run("profile", "list").stdout
    assert table == (
        "+---------+---------------------+---------+\n"
        "|  NAME   |     DESCRIPTION     | USED BY |\n"
        "+---------+---------------------+---------+\n"
        "| b-prof  |                     | 0       |\n"
        "+---------+---------------------+---------+\n"
        "| default | Default LXD profile | 1       |\n"
        "+---------+---------------------+---------+\n"
    )
    assert run("profile", "list", "--format", "csv").stdout == "b-prof,,0\ndefault,Default LXD profile,1\n"
    data = json.loads(run("profile", "ls", "-f", "json").stdout)
    assert [p["name"] for p in data] == ["b-prof", "default"]
    yml = run("profile", "list", "--format", "yaml").stdout
    assert yml.startswith("- config: {}\n  description: \"\"\n  devices: {}\n  name: b-prof\n  used_by: []\n")
    assert run("profile", "list", "-f", "bogus").exit_code == 2


def test_profile_show(fake, run):
    assert run("profile", "show", "default").stdout == (
        "config: {}\n"
        "description: Default LXD profile\n"
        "devices:\n"
        "  eth0:\n    name: eth0\n    network: lxdbr0\n    type: nic\n"
        "  root:\n    path: /\n    pool: default\n    type: disk\n"
        "name: default\n"
        "used_by:\n- /1.0/instances/c1\n"
    )


def test_profile_lifecycle(fake, run):
    assert run("profile", "create", "p1").stdout == "Profile p1 created\n"
    assert fake.find("POST", "/1.0/profiles")[-1].json == {"name": "p1"}
    assert run("profile", "copy", "p1", "p2").stdout == ""
    assert "p2" in fake.profiles
    assert run("profile", "rename", "p2", "p3").stdout == "Profile p2 renamed to p3\n"
    assert fake.find("POST", "/1.0/profiles/p2")[-1].json == {"name": "p3"}
    assert run("profile", "delete", "p3").stdout == "Profile p3 deleted\n"
    result = run("profile", "delete", "p3")
    assert result.exit_code == 1
    assert result.stderr == "Error: Profile not found\n"
    result = run("profile", "create", "p1")
    assert result.exit_code == 1
    assert "already exists" in result.stderr


def test_profile_set_unset_send_put(fake, run):
    run("profile", "create", "p1")
    assert run("profile", "set", "p1", "user.a=1", "user.b=2").exit_code == 0
    put = fake.find("PUT", "/1.0/profiles/p1")[-1]
    assert put.json == {"config": {"user.a": "1", "user.b": "2"}, "description": "", "devices": {}}
    assert put.headers["If-Match"] == "profile-p1"
    assert run("profile", "set", "p1", "limits.memory", "256MiB").exit_code == 0
    assert fake.profiles["p1"]["config"]["limits.memory"] == "256MiB"
    assert run("profile", "get", "p1", "user.a").stdout == "1\n"
    assert run("profile", "unset", "p1", "user.a").exit_code == 0
    assert fake.find("PUT", "/1.0/profiles/p1")[-1].json["config"] == {"user.b": "2", "limits.memory": "256MiB"}
    result = run("profile", "set", "p1", "novalue")
    assert result.exit_code == 1
    assert result.stderr == "Error: Invalid key=value configuration: novalue\n"


def test_profile_devices(fake, run):
    run("profile", "create", "p1")
    assert run("profile", "device", "add", "p1", "root", "disk", "path=/", "pool=default").stdout == \
        "Device root added to p1\n"
    result = run("profile", "device", "add", "p1", "root", "disk", "path=/")
    assert (result.exit_code, result.stderr) == (1, "Error: The device already exists\n")
    assert run("profile", "device", "list", "p1").stdout == "root\n"
    assert run("profile", "device", "set", "p1", "root", "size=1GiB").exit_code == 0
    assert fake.profiles["p1"]["devices"]["root"]["size"] == "1GiB"
    assert run("profile", "device", "unset", "p1", "root", "size").exit_code == 0
    assert "size" not in fake.profiles["p1"]["devices"]["root"]
    assert run("profile", "device", "show", "p1").stdout == "root:\n  path: /\n  pool: default\n  type: disk\n"
    assert run("profile", "device", "rm", "p1", "root").stdout == "Device root removed from p1\n"
    result = run("profile", "device", "remove", "p1", "root")
    assert (result.exit_code, result.stderr) == (1, "Error: Device doesn't exist\n")


def test_profile_edit_stdin(fake, run):
    run("profile", "create", "p1")
    result = run("profile", "edit", "p1", input="description: hi\nconfig:\n  user.n: 5\n  user.t: true\n")
    assert result.exit_code == 0
    assert fake.find("PUT", "/1.0/profiles/p1")[-1].json == {
        "config": {"user.n": "5", "user.t": "true"}, "description": "hi", "devices": {}}


def test_profile_add_remove_instance(fake, run):
    fake.add_instance("c1")
    run("profile", "create", "p1")
    assert run("profile", "add", "c1", "p1").stdout == "Profile p1 added to c1\n"
    assert fake.instances["c1"]["profiles"] == ["default", "p1"]
    assert run("profile", "remove", "c1", "p1").stdout == "Profile p1 removed from c1\n"
    result = run("profile", "remove", "c1", "p1")
    assert result.stderr == "Error: Profile p1 isn't currently applied to c1\n"
    assert run("profile", "assign", "c1", "default,p1").stdout == "Profiles default,p1 applied to c1\n"
