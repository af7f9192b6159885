"""`corral query`, `corral operation`, `corral monitor` and error display."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_cli_fakeserver import fake, run  # noqa: E402,F401


def test_query_prints_sorted_indented_metadata(fake, run):
    result = run("query", "/1.0/profiles/default")
    assert result.exit_code == 0
    assert result.stdout.startswith('{\n\t"config": {},\n\t"description": "Default LXD profile",\n\t"devices": {\n')
    assert result.stdout.endswith("\n}\n\n")


def test_query_raw_keeps_envelope(fake, run):
    result = run("query", "--raw", "/1.0/profiles")
    assert result.stdout == (
        '{\n\t"type": "sync",\n\t"status": "Success",\n\t"status_code": 200,\n\t"operation": "",\n'
        '\t"error_code": 0,\n\t"error": "",\n\t"metadata": [\n\t\t"/1.0/profiles/default"\n\t]\n}\n\n'
    )


def test_query_methods_and_data(fake, run):
    result = run("query", "-X", "POST", "-d", '{"name": "p9"}', "/1.0/profiles")
    assert result.exit_code == 0
    assert result.stdout == ""  # null metadata prints nothing
    assert "p9" in fake.profiles
    assert run("query", "-X", "PUT", "-d", "-", "/1.0", input='{"config": {"user.x": "1"}}').exit_code == 0
    assert fake.find("PUT", "/1.0")[-1].json == {"config": {"user.x": "1"}}
    # Not JSON: sent as a JSON string, like lxc.
    run("query", "-X", "POST", "-d", "not json", "/1.0/profiles")
    assert fake.find("POST", "/1.0/profiles")[-1].json == "not json"


def test_query_errors(fake, run):
    result = run("query", "/1.0/nonexist")
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", "Error: not found\n")
    result = run("query", "1.0")
    assert result.stderr == "Error: Query path must start with /\n"
    result = run("query", "-X", "HEAD", "/1.0")
    assert result.stderr == 'Error: Action "HEAD" isn\'t supported by this tool\n'
    result = run("--project", "p", "query", "/1.0")
    assert result.stderr == "Error: --project cannot be used with the query command\n"


def test_query_non_json_body_printed_raw(fake, run):
    fake.route("GET", "/1.0/instances/c1/logs/lxc.log", lambda req: (200, b"line1\nline2\n"))
    assert run("query", "/1.0/instances/c1/logs/lxc.log").stdout == "line1\nline2\n"


def test_query_wait(fake, run):
    fake.route("DELETE", "/1.0/instances/c1", lambda req: fake.async_response(metadata={"k": "v"}))
    result = run("query", "-X", "DELETE", "--wait", "/1.0/instances/c1")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["status"] == "Success" and out["metadata"] == {"k": "v"}
    fake.route("DELETE", "/1.0/instances/c2", lambda req: fake.async_response(status="Failure", err="it broke"))
    result = run("query", "-X", "DELETE", "--wait", "/1.0/instances/c2")
    assert (result.exit_code, result.stderr) == (1, "Error: it broke\n")


def test_connection_error(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from corral.cli.main import cli

    monkeypatch.setenv("CORRAL_SOCKET", str(tmp_path / "missing.socket"))
    result = CliRunner().invoke(cli, ["profile", "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith('Error: Get "http://unix.socket/1.0/profiles?recursion=1": dial unix ')
    first, hint = result.stderr.rstrip("\n").split("\n")
    assert first.endswith("connect: no such file or directory")
    assert hint.startswith("Is corrald running? Set CORRAL_DIR")


def test_socket_path_resolution(monkeypatch):
    from corral.cli.client import default_socket_path

    monkeypatch.delenv("CORRAL_SOCKET", raising=False)
    monkeypatch.delenv("CORRAL_DIR", raising=False)
    assert default_socket_path() == "/var/lib/corral/unix.socket"
    monkeypatch.setenv("CORRAL_DIR", "/srv/corral")
    assert default_socket_path() == "/srv/corral/unix.socket"
    monkeypatch.setenv("CORRAL_SOCKET", "/tmp/x.sock")
    assert default_socket_path() == "/tmp/x.sock"


def test_project_flag_appended(fake, run):
    run("--project", "proj1", "profile", "list")
    assert fake.find("GET", "/1.0/profiles")[-1].query == {"recursion": "1", "project": "proj1"}


# ----------------------------------------------------------------- operations


def test_operation_list_show_delete(fake, run, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    op = fake.add_operation(status="Running", description="Creating instance", cls="task", may_cancel=True)
    op["id"] = "eebdca2b-d571-4759-8a02-83970205f66d"
    fake.operations = {op["id"]: op}
    assert run("operation", "list").stdout == (
        "+--------------------------------------+------+-------------------+---------+------------+----------------------+\n"
        "|                  ID                  | TYPE |    DESCRIPTION    | STATUS  | CANCELABLE |       CREATED        |\n"
        "+--------------------------------------+------+-------------------+---------+------------+----------------------+\n"
        "| eebdca2b-d571-4759-8a02-83970205f66d | TASK | Creating instance | RUNNING | YES        | 2026/11/21 13:03 UTC |\n"
        "+--------------------------------------+------+-------------------+---------+------------+----------------------+\n"
    )
    assert json.loads(run("operation", "list", "-f", "json").stdout)[0]["id"] == op["id"]
    show = run("operation", "show", op["id"]).stdout
    assert show.startswith(f"id: {op['id']}\nclass: task\ndescription: Creating instance\n"
                           "created_at: 2026-11-21T13:03:34.614456683Z\n")
    assert run("operation", "delete", op["id"]).stdout == f"Operation {op['id']} deleted\n"
    assert fake.find("DELETE", f"/1.0/operations/{op['id']}")
    result = run("operation", "show", "nope")
    assert result.stderr == "Error: Operation not found\n"


# -------------------------------------------------------------------- monitor

LIFECYCLE = {"type": "lifecycle", "timestamp": "2026-11-21T13:54:47.639297838Z", "location": "none",
             "project": "default",
             "metadata": {"action": "profile-created", "source": "/1.0/profiles/montest",
                          "requestor": {"username": "root", "protocol": "unix", "address": "@"}}}
LOGGING = {"type": "logging", "timestamp": "2026-11-21T13:54:46.643262392Z", "location": "none",
           "metadata": {"message": "Handling API request", "level": "debug",
                        "context": {"url": "/1.0", "method": "GET", "ip": "@", "protocol": "unix",
                                    "username": "root"}}}


def test_monitor_yaml(fake, run):
    fake.events = [LIFECYCLE]
    result = run("monitor")
    assert result.exit_code == 0
    assert result.stdout == (
        "location: none\nmetadata:\n  action: profile-created\n  requestor:\n    address: '@'\n"
        "    protocol: unix\n    username: root\n  source: /1.0/profiles/montest\nproject: default\n"
        'timestamp: "2026-11-21T13:54:47.639297838Z"\ntype: lifecycle\n\n\n'
    )


def test_monitor_type_filter_and_json(fake, run):
    fake.events = [LOGGING, LIFECYCLE]
    result = run("monitor", "--type", "lifecycle", "--format", "json")
    assert fake.find("GET", "/1.0/events")[-1].query == {"type": "lifecycle"}
    assert result.stdout.count("\n\n") == 1
    assert json.loads(result.stdout)["metadata"]["action"] == "profile-created"


def test_monitor_pretty(fake, run, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    fake.events = [LOGGING, LIFECYCLE]
    result = run("monitor", "--pretty")
    assert result.stdout == (
        'time="2026-11-21T13:54:46Z" level=debug msg="Handling API request" ip=@ method=GET protocol=unix '
        "url=/1.0 username=root\n"
        'time="2026-11-21T13:54:47Z" level=info msg="Action: profile-created, Source: /1.0/profiles/montest, '
        'Requestor: unix/root (@)"\n'
    )
    result = run("monitor", "--pretty", "--loglevel", "info")
    assert "Handling API request" not in result.stdout
