"""`corral exec` over the exec websocket protocol, and `corral console`."""

import asyncio
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_cli_fakeserver import fake, run  # noqa: E402,F401

import corral.cli.instance_exec as ie  # noqa: E402


def test_exec_non_interactive_streams_and_exit_code(fake, run):
    fake.add_instance("c1")
    fake.exec_defaults = {"stdout": b"out\n", "stderr": b"err\n", "return_code": 3}
    result = run("exec", "c1", "--env", "FOO=bar", "--cwd", "/tmp", "--user", "1000", "--group", "1000",
                 "--", "sh", "-c", "echo hi", input="ignored")
    assert result.exit_code == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    post = fake.find("POST", "/1.0/instances/c1/exec")[-1].json
    assert post["command"] == ["sh", "-c", "echo hi"]
    assert post["wait-for-websocket"] is True
    assert post["interactive"] is False
    assert post["environment"]["FOO"] == "bar"
    assert (post["cwd"], post["user"], post["group"]) == ("/tmp", 1000, 1000)
    sess = next(iter(fake.exec_sessions.values()))
    # control, 0, 1, 2 were all attached with their secrets
    secrets_used = {r.query.get("secret") for r in fake.requests if r.path.endswith("/websocket")}
    assert secrets_used == set(sess.secrets.values())


def test_exec_forwards_stdin_until_eof(fake, run):
    fake.add_instance("c1")
    fake.exec_defaults = {"echo_stdin": True}
    data = "line1\nline2\n" * 1000
    result = run("exec", "c1", "--", "cat", input=data)
    assert result.exit_code == 0
    assert result.stdout == data
    sess = next(iter(fake.exec_sessions.values()))
    assert sess.stdin_eof and bytes(sess.stdin) == data.encode()


def test_exec_disable_stdin(fake, run):
    fake.add_instance("c1")
    fake.exec_defaults = {"echo_stdin": True}
    result = run("exec", "-n", "c1", "--", "cat", input="should not be sent")
    assert result.exit_code == 0 and result.stdout == ""
    sess = next(iter(fake.exec_sessions.values()))
    assert sess.stdin_eof and bytes(sess.stdin) == b""


def test_exec_interactive(fake, run):
    fake.add_instance("c1")
    fake.exec_defaults = {"stdout": b"# ", "echo_stdin": True, "return_code": 7}
    result = run("exec", "-t", "c1", "--", "sh", input="echo hi\n\x04")
    assert result.exit_code == 7
    assert result.stdout == "# echo hi\n\x04"
    post = fake.find("POST", "/1.0/instances/c1/exec")[-1].json
    assert post["interactive"] is True
    sess = next(iter(fake.exec_sessions.values()))
    assert set(sess.secrets) == {"control", "0"}


def test_exec_errors(fake, run):
    result = run("exec", "nope", "--", "true")
    assert (result.exit_code, result.stderr) == (1, "Error: Instance not found\n")
    fake.add_instance("c1")
    result = run("exec", "-t", "-T", "c1", "--", "true")
    assert result.stderr == "Error: You can't pass -t and -T at the same time\n"


def test_signals_and_resize_go_to_control(monkeypatch):
    sent = []

    class Control:
        async def send_str(self, text):
            sent.append(json.loads(text))

    monkeypatch.setattr(ie, "terminal_size", lambda stream=None: (120, 40))

    async def main():
        loop = asyncio.get_running_loop()
        installed = ie.install_signal_handlers(loop, Control(), forward=True, resize=True)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGWINCH)
            for _ in range(50):
                await asyncio.sleep(0.01)
                if len(sent) >= 2:
                    break
        finally:
            ie.remove_signal_handlers(loop, installed)

    asyncio.run(main())
    assert {"command": "signal", "signal": int(signal.SIGUSR1)} in sent
    assert {"command": "window-resize", "args": {"width": "120", "height": "40"}} in sent


def test_console_show_log(fake, run):
    fake.add_instance("c1")
    fake.route("GET", "/1.0/instances/c1/console", lambda req: (200, b"boot messages\n"))
    assert run("console", "c1", "--show-log").stdout == "\nConsole log:\n\nboot messages\n\n"
