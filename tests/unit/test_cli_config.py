"""`corral info`, `corral config ...` against the fake server."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_cli_fakeserver import fake, run  # noqa: E402,F401


def test_server_info_yaml(fake, run):
    result = run("info")
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("config: {}\napi_extensions:\n- etag\n")
    assert "api_version: \"1.0\"\n" in out
    assert "  certificate: |\n    -----BEGIN CERTIFICATE-----\n" in out
    # maps sorted like Go, driver structs lower-cased like their yaml tags
    assert out.index("idmapped_mounts") < out.index("shiftfs")
    assert "  - name: dir\n    version: \"1\"\n    remote: false\n" in out


def test_config_show_and_get(fake, run):
    fake.server["config"] = {"core.https_address": "[::]:8443", "images.auto_update_interval": 6}
    assert run("config", "show").stdout == "config:\n  core.https_address: '[::]:8443'\n  images.auto_update_interval: 6\n"
    assert run("config", "get", "core.https_address").stdout == "[::]:8443\n"
    assert run("config", "get", "images.auto_update_interval").stdout == "6\n"
    assert run("config", "get", "missing").stdout == "\n"


def test_config_set_server_forms(fake, run):
    assert run("config", "set", "user.a=1", "user.b=2").exit_code == 0
    put = fake.find("PUT", "/1.0")[-1]
    assert put.json == {"config": {"user.a": "1", "user.b": "2"}}
    assert put.headers.get("If-Match") == "server-etag-1"
    assert run("config", "set", "user.c", "three words").exit_code == 0
    assert fake.server["config"]["user.c"] == "three words"
    assert run("config", "unset", "user.a").exit_code == 0
    assert fake.find("PUT", "/1.0")[-1].json["config"]["user.a"] == ""
    assert "user.a" not in fake.server["config"]


def test_config_set_invalid_pair(fake, run):
    result = run("config", "set", "user.only")
    assert result.exit_code == 1
    assert result.stderr == "Error: Invalid key=value configuration: user.only\n"


def test_config_set_instance(fake, run):
    fake.add_instance("c1")
    assert run("config", "set", "c1", "limits.memory", "256MiB").exit_code == 0
    put = fake.find("PUT", "/1.0/instances/c1")[-1]
    assert put.json["config"]["limits.memory"] == "256MiB"
    assert set(put.json) == {"architecture", "config", "devices", "ephemeral", "profiles", "stateful", "description"}
    assert put.headers.get("If-Match") == "inst-c1"
    assert run("config", "set", "c1", "user.x=1", "user.y=2").exit_code == 0
    assert fake.instances["c1"]["config"]["user.y"] == "2"
    assert run("config", "get", "c1", "limits.memory").stdout == "256MiB\n"
    assert run("config", "unset", "c1", "user.x").exit_code == 0
    assert "user.x" not in fake.instances["c1"]["config"]
    result = run("config", "unset", "c1", "user.x")
    assert result.exit_code == 1
    assert result.stderr == "Error: Can't unset key 'user.x', it's not currently set\n"


def test_config_show_instance(fake, run):
    fake.add_instance("c1")
    out = run("config", "show", "c1").stdout
    assert out.startswith("architecture: x86_64\nconfig:\n  image.os: Busybox\n")
    assert out.endswith("devices: {}\nephemeral: false\nprofiles:\n- default\nstateful: false\ndescription: \"\"\n")
    assert "eth0" in run("config", "show", "c1", "--expanded").stdout


def test_missing_instance_error(fake, run):
    result = run("config", "show", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "Error: Instance not found\n"


def test_config_device_add_remove(fake, run):
    fake.add_instance("c1")
    result = run("config", "device", "add", "c1", "d1", "disk", "source=/tmp", "path=/mnt")
    assert result.stdout == "Device d1 added to c1\n"
    assert fake.instances["c1"]["devices"] == {"d1": {"type": "disk", "source": "/tmp", "path": "/mnt"}}
    assert run("config", "device", "list", "c1").stdout == "d1\n"
    assert run("config", "device", "show", "c1").stdout == "d1:\n  path: /mnt\n  source: /tmp\n  type: disk\n"
    assert run("config", "device", "set", "c1", "d1", "readonly=true").exit_code == 0
    assert run("config", "device", "get", "c1", "d1", "readonly").stdout == "true\n"
    assert run("config", "device", "remove", "c1", "d1").stdout == "Device d1 removed from c1\n"
    result = run("config", "device", "remove", "c1", "eth0")
    assert result.exit_code == 1
    assert "Device from profile(s) cannot be removed from individual instance" in result.stderr
    assert run("config", "device", "override", "c1", "eth0", "mtu=1400").stdout == "Device eth0 overridden for c1\n"
    assert fake.instances["c1"]["devices"]["eth0"]["mtu"] == "1400"


def test_config_edit_from_stdin(fake, run):
    result = run("config", "edit", input="config:\n  user.k: 5\n")
    assert result.exit_code == 0
    assert fake.find("PUT", "/1.0")[-1].json == {"config": {"user.k": 5}}
    fake.add_instance("c1")
    result = run("config", "edit", "c1", input="config:\n  limits.cpu: 2\nprofiles: [default]\nephemeral: true\n")
    assert result.exit_code == 0
    put = fake.find("PUT", "/1.0/instances/c1")[-1].json
    assert put["config"] == {"limits.cpu": "2"}
    assert put["ephemeral"] is True
    result = run("config", "edit", "c1", input="config: [\n")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: yaml: line ")
