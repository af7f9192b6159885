"""corral-agent (corral/vmagent/) and its host client (corral/instance/agent/), without QEMU: the
real agent binary runs on this host (in its own UTS namespace) against tests/agentrelay.py, a
stand-in for the virtio-serial chardev, and AgentClient talks to it as corrald would."""
from __future__ import annotations

import errno
import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agentrelay import Agent, Relay, wait_for  # noqa: E402
from helpers import unique  # noqa: E402

from corral.instance.agent import AgentClient, AgentError, AgentFileError, AgentNotRunning  # noqa: E402

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


@pytest.fixture
def vm():
    """(relay, agent, client, scratch dir) with the agent connected; all removed afterwards."""
    relay = Relay()
    scratch = tempfile.mkdtemp(prefix="vm-agent-")
    agent = Agent(relay, devlxd=os.path.join(relay.dir, "lxd", "sock"))
    client = AgentClient(relay.host_path, hostname=unique("vm"))
    try:
        client.connect(10)
        yield relay, agent, client, scratch
    finally:
        client.close()
        agent.stop()
        relay.close()
        subprocess.run(["rm", "-rf", scratch], check=False)


def run(client, command, stdin=b"", **kw):
    """(exit code, stdout, stderr) of a command run with pipes."""
    p = client.exec(command, ENV, **kw)
    out, err = {}, {}

    def drain(fd, into):
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        os.close(fd)
        into["data"] = b"".join(chunks)

    threads = [threading.Thread(target=drain, args=(p.stdout, out)), threading.Thread(target=drain, args=(p.stderr, err))]
    for t in threads:
        t.start()
    if stdin:
        os.write(p.stdin, stdin)
    os.close(p.stdin)
    code = p.wait()
    for t in threads:
        t.join(30)
    return code, out["data"], err["data"]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---- exec ------------------------------------------------------------------------------------

def test_exec_pipes_separate_stdout_stderr_stdin_and_exit_codes(vm):
    _, _, client, _ = vm
    code, out, err = run(client, ["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
    assert (code, out, err) == (3, b"to-out\n", b"to-err\n")
    code, out, err = run(client, ["sh", "-c", "tr a-z A-Z; echo done"], stdin=b"hello agent\n")
    assert (code, out, err) == (0, b"HELLO AGENT\ndone\n", b"")
    code, out, _ = run(client, ["cat"], stdin=b"")      # stdin EOF at once
    assert (code, out) == (0, b"")


def test_exec_env_cwd_user_and_hostname(vm):
    _, _, client, scratch = vm
    os.chmod(scratch, 0o755)
    p = client.exec(["sh", "-c", 'echo "$FOO|$(pwd)|$(id -u):$(id -g)|$(hostname)"'], {**ENV, "FOO": "bar baz"},
                    cwd=scratch, uid=65534, gid=65534)
    os.close(p.stdin)
    assert p.wait() == 0
    out = os.read(p.stdout, 4096)
    os.close(p.stdout)
    os.close(p.stderr)
    assert out.decode() == f"bar baz|{scratch}|65534:65534|{client.hostname}\n"


def test_exec_failures(vm):
    _, _, client, scratch = vm
    code, _, err = run(client, ["/no/such/command"])
    assert code == 127 and b"No such file or directory" in err
    plain = os.path.join(scratch, "plain")
    with open(plain, "w") as f:
        f.write("echo hi\n")
    code, _, err = run(client, [plain])          # not executable
    assert b"Permission denied" in err
    assert code == 126
    with pytest.raises(AgentError) as e:
        client.exec(["true"], ENV, cwd="/no/such/dir")
    assert e.value.errno == errno.ENOENT and "working directory" in e.value.message


def test_exec_signals_reach_commands_of_an_agent_started_with_signals_ignored():
    """An agent started with SIGINT and SIGQUIT ignored (a script's background job) runs its commands
    with every signal at its default: SIGINT ends them (128+2), as from an agent started by init."""
    relay = Relay()
    agent = Agent(relay, ignored=(signal.SIGINT, signal.SIGQUIT))
    client = AgentClient(relay.host_path, hostname=unique("vm"))
    try:
        client.connect(10)
        for sig in (signal.SIGINT, signal.SIGQUIT):
            p = client.exec(["sleep", "30"], ENV)
            assert p.pid > 0 and alive(p.pid)
            p.kill(sig)
            assert p.wait() == 128 + sig
            for fd in (p.stdin, p.stdout, p.stderr):
                os.close(fd)
    finally:
        client.close()
        agent.stop()
        relay.close()


def test_exec_signals_give_128_plus_n(vm):
    _, _, client, _ = vm
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
        p = client.exec(["sleep", "60"], ENV)
        assert p.pid > 0 and alive(p.pid)
        p.kill(sig)
        assert p.wait() == 128 + sig
        for fd in (p.stdin, p.stdout, p.stderr):
            os.close(fd)
    code, _, _ = run(client, ["sh", "-c", "kill -USR1 $$"])
    assert code == 128 + signal.SIGUSR1


def _read_until(fd: int, needle: bytes, timeout: float = 10) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        s = socket.socket(fileno=os.dup(fd))
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            chunk = None
        finally:
            s.close()
        if chunk == b"":
            break
        data += chunk or b""
    return data


def test_pty_exec_is_a_terminal_with_resize(vm):
    _, _, client, _ = vm
    script = 'test -t 0 && echo is-a-tty; stty size; read line; stty size; echo "got $line"; exit 5'
    p = client.exec(["sh", "-c", script], ENV, interactive=True, width=100, height=30)
    assert p.pty is not None and p.stdin is None
    assert b"30 100" in _read_until(p.pty, b"30 100")
    p.resize(120, 40)
    os.write(p.pty, b"typed\n")
    rest = _read_until(p.pty, b"got typed")
    assert b"40 120" in rest and b"got typed" in rest
    assert p.wait() == 5
    os.close(p.pty)


def test_pty_signal_and_window_change_reach_the_shell(vm):
    _, _, client, _ = vm
    p = client.exec(["sh", "-c", 'trap "echo winch; stty size" WINCH; echo ready; while :; do sleep 0.05; done'],
                    ENV, interactive=True)
    _read_until(p.pty, b"ready")
    p.resize(90, 33)
    assert b"33 90" in _read_until(p.pty, b"33 90")
    p.kill(signal.SIGTERM)
    assert p.wait() == 128 + signal.SIGTERM
    os.close(p.pty)


def test_concurrent_sessions_and_flow_control(vm):
    _, _, client, _ = vm
    # One session with 8 MiB of output nobody reads yet: its credit runs out, the others go on.
    stuck = client.exec(["head", "-c", str(8 << 20), "/dev/zero"], ENV)
    results = {}

    def one(i):
        results[i] = run(client, ["sh", "-c", f"i=0; while [ $i -lt 200 ]; do echo {i}-$i; i=$((i+1)); done"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(12):
        code, out, _ = results[i]
        assert code == 0
        assert out.decode().split() == [f"{i}-{n}" for n in range(200)]
    total = 0
    while chunk := os.read(stuck.stdout, 1 << 20):
        total += len(chunk)
    assert total == 8 << 20 and stuck.wait() == 0
    for fd in (stuck.stdin, stuck.stdout, stuck.stderr):
        os.close(fd)


def test_reader_gone_gives_the_command_sigpipe(vm):
    _, _, client, _ = vm
    p = client.exec(["sh", "-c", "yes"], ENV)
    os.read(p.stdout, 100)
    os.close(p.stdout)
    assert p.wait() == 128 + signal.SIGPIPE
    os.close(p.stdin)
    os.close(p.stderr)


# ---- files -----------------------------------------------------------------------------------

def test_file_push_pull_throughput(vm, capsys):
    _, _, client, scratch = vm
    data = os.urandom(16 << 20)
    path = os.path.join(scratch, "big.bin")
    t0 = time.monotonic()
    client.file_put(path, "file", data, uid=1000, gid=1001, mode=0o640)
    push = time.monotonic() - t0
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_size) == (1000, 1001, 0o640, len(data))
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
    t0 = time.monotonic()
    entry = client.file_get(path)
    got = b"".join(iter(lambda: entry.file.read(1 << 20), b""))
    entry.file.close()
    pull = time.monotonic() - t0
    assert got == data
    assert (entry.info.type, entry.info.uid, entry.info.gid, entry.info.mode, entry.info.size) == \
        ("file", 1000, 1001, 0o640, len(data))
    with capsys.disabled():
        print(f"\nvm-agent over a unix-socket relay: push {len(data) / push / 1e6:.0f} MB/s, "
              f"pull {len(data) / pull / 1e6:.0f} MB/s ({len(data) >> 20} MiB)")


def test_file_put_sources_overwrite_and_append(vm):
    _, _, client, scratch = vm
    path = os.path.join(scratch, "f")
    client.file_put(path, "file", iter([b"one ", b"", b"two"]))
    assert open(path, "rb").read() == b"one two" and os.stat(path).st_mode & 0o777 == 0o644
    os.chmod(path, 0o600)
    with tempfile.TemporaryFile() as src:
        src.write(b"replaced")
        src.seek(0)
        client.file_put(path, "file", src, mode=0o666)
    st = os.stat(path)
    assert open(path, "rb").read() == b"replaced" and st.st_mode & 0o777 == 0o600   # kept on overwrite
    client.file_put(path, "file", b"+more", append=True)
    assert open(path, "rb").read() == b"replaced+more"
    assert [n for n in os.listdir(scratch) if "corral-" in n] == []   # no temporary left
    with pytest.raises(AgentFileError) as e:
        client.file_put(os.path.join(scratch, "missing-file"), "file", b"x", append=True)
    assert e.value.status == 404
    os.symlink("target-file", os.path.join(scratch, "link"))
    client.file_put(os.path.join(scratch, "link"), "file", b"through the link")
    assert open(os.path.join(scratch, "target-file"), "rb").read() == b"through the link"
    assert os.path.islink(os.path.join(scratch, "link"))
    client.file_put(path, "file", b"")
    assert os.path.getsize(path) == 0


def test_file_directories_symlinks_delete_and_errors(vm):
    _, _, client, scratch = vm
    d = os.path.join(scratch, "dir")
    client.file_put(d, "directory", uid=12, gid=34)
    st = os.stat(d)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (12, 34, 0o750)
    client.file_put(d, "directory", mode=0o700)                 # exists: success, unchanged
    assert os.stat(d).st_mode & 0o7777 == 0o750
    client.file_put(os.path.join(d, "a"), "file", b"A")
    client.file_put(os.path.join(d, "sub"), "directory", mode="0755")
    client.file_put(os.path.join(d, "ln"), "symlink", "../elsewhere")
    client.file_put(os.path.join(d, "ln"), "symlink", "../elsewhere")   # same target: success
    assert os.readlink(os.path.join(d, "ln")) == "../elsewhere"
    entry = client.file_get(d)
    assert entry.info.type == "directory" and entry.entries == ["a", "ln", "sub"]
    entry = client.file_get(os.path.join(d, "ln"))
    assert entry.info.type == "symlink" and entry.target == "../elsewhere"
    with pytest.raises(AgentFileError) as e:
        client.file_put(os.path.join(d, "ln"), "symlink", "other")
    assert e.value.status == 400 and e.value.errno == errno.EEXIST
    for missing in (os.path.join(scratch, "nope"), os.path.join(scratch, "nope", "deeper")):
        with pytest.raises(AgentFileError) as e:
            client.file_get(missing)
        assert (e.value.status, e.value.errno, e.value.message) == (404, errno.ENOENT, "not found")
    with pytest.raises(AgentFileError) as e:
        client.file_put(os.path.join(scratch, "nope", "f"), "file", b"x")
    assert e.value.status == 404
    with pytest.raises(AgentFileError) as e:
        client.file_delete(d)                                     # not empty
    assert e.value.status == 400 and e.value.errno == errno.ENOTEMPTY
    for name in ("a", "ln", "sub"):
        client.file_delete(os.path.join(d, name))
    client.file_delete(d)
    assert not os.path.lexists(d)
    with pytest.raises(AgentFileError) as e:
        client.file_delete(d)
    assert e.value.status == 404
    with pytest.raises(AgentError):
        client.file_delete("/")


def test_file_get_closed_early_and_special_files(vm):
    _, _, client, scratch = vm
    path = os.path.join(scratch, "big")
    with open(path, "wb") as f:
        f.write(os.urandom(4 << 20))
    entry = client.file_get(path)
    assert len(entry.file.read(1000)) <= 1000
    entry.file.close()                         # the agent stops sending; the link goes on
    assert client.file_get(path).file.read(5)
    with pytest.raises(AgentFileError) as e:
        client.file_get("/dev/null")
    assert e.value.status == 400


# ---- state -----------------------------------------------------------------------------------

def test_state_in_lxd_field_names(vm):
    _, _, client, _ = vm
    st = client.state()
    assert st["processes"] > 1
    mem = st["memory"]
    assert set(mem) >= {"usage", "usage_peak", "swap_usage", "swap_usage_peak", "total"}
    assert 0 < mem["usage"] <= mem["total"] and mem["usage_peak"] >= mem["usage"] > 0
    assert st["cpu"]["usage"] > 0
    assert 0 < st["disk"]["/"]["usage"] <= st["disk"]["/"]["total"]
    lo = st["network"]["lo"]
    assert {"family": "inet", "address": "127.0.0.1", "netmask": "8", "scope": "local"} in lo["addresses"]
    assert (lo["type"], lo["state"], lo["hwaddr"], lo["host_name"], lo["mtu"]) == ("loopback", "up", "", "", 65536)
    assert set(lo["counters"]) == {"bytes_received", "bytes_sent", "packets_received", "packets_sent",
                                   "errors_received", "errors_sent", "packets_dropped_outbound",
                                   "packets_dropped_inbound"}
    with open("/sys/class/net/lo/statistics/rx_bytes") as f:
        assert lo["counters"]["bytes_received"] >= int(f.read()) - 10_000_000
    others = [n for n in st["network"] if n != "lo"]
    for name in others:
        with open(f"/sys/class/net/{name}/address") as f:
            hw = f.read().strip()
        assert st["network"][name]["hwaddr"] in (hw, "")


# ---- /dev/lxd --------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f'{{"path": "{self.path}"}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_devlxd_connections_are_tunnelled_to_the_host(vm):
    relay, _, first, _ = vm
    first.close()        # the chardev serves one client at a time
    sock_path = os.path.join(relay.dir, "lxd", "sock")
    assert wait_for(lambda: os.path.exists(sock_path))
    assert os.stat(sock_path).st_mode & 0o777 == 0o666
    served = []

    def on_stream(sock):
        served.append(sock)
        _Handler(sock, ("guest", 0), None)
        sock.close()

    client = AgentClient(relay.host_path, hostname="devlxd-vm", on_stream=on_stream)
    try:
        client.connect(10)
        for attempt in range(3):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(sock_path)
                s.sendall(f"GET /1.0/meta-data?n={attempt} HTTP/1.1\r\nHost: lxd\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            assert data.startswith(b"HTTP/1.1 200") and data.endswith(f'{{"path": "/1.0/meta-data?n={attempt}"}}'.encode())
        assert len(served) == 3
    finally:
        client.close()


def test_devlxd_refused_without_a_handler(vm):
    relay, _, _, _ = vm
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(os.path.join(relay.dir, "lxd", "sock"))
        try:       # closed by the agent, or by the host right after: EOF, or a reset if unread
            s.sendall(b"GET /1.0 HTTP/1.1\r\n\r\n")
            assert s.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            pass


# ---- the link going away ---------------------------------------------------------------------

_DETACHED_CLIENT = """
import os, sys
from corral.instance.agent import AgentClient
c = AgentClient(sys.argv[1], hostname="old")
c.connect(10)
p = c.exec(["sh", "-c", "sleep 1000 & echo $!; wait"], {"PATH": "/usr/bin:/bin"})
print(p.pid, os.read(p.stdout, 100).decode().strip(), flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("hangup", [True, False], ids=["hangup", "no-hangup"])
def test_new_connection_kills_old_sessions(hangup):
    relay = Relay(hangup=hangup)
    agent = Agent(relay)
    old = None
    client = AgentClient(relay.host_path, hostname="new")
    try:
        old = subprocess.Popen([sys.executable, "-c", _DETACHED_CLIENT, relay.host_path], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        pid, child = (int(x) for x in old.stdout.readline().split())
        assert alive(pid) and alive(child)
        # A half-sent frame as the old client dies (kill -9 mid-write): the agent's parser is left
        # waiting for 60000 bytes that never come (without a hang-up it only learns from the HELLO).
        partial = bytes.fromhex("c0a6") + bytes([9, 0]) + (1).to_bytes(4, "little") + (60000).to_bytes(4, "little")
        partial += zlib.crc32(partial).to_bytes(4, "little") + b"x" * 100
        old.kill()
        old.wait()
        if not hangup:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(relay.host_path)
                s.sendall(partial)
        assert alive(pid)                       # nothing happens before a new HELLO
        client.connect(10)
        assert client.connected
        assert wait_for(lambda: not alive(pid) and not alive(child)), "old session survived"
        code, out, _ = run(client, ["sh", "-c", "echo fresh; hostname"])
        assert (code, out) == (0, b"fresh\nnew\n")
    finally:
        if old is not None and old.poll() is None:
            old.kill()
            old.wait()
        client.close()
        agent.stop()
        relay.close()


def test_link_loss_fails_waiters_and_the_next_call_reconnects(vm):
    relay, _, client, _ = vm
    p = client.exec(["sleep", "1000"], ENV)
    pid = p.pid
    relay.drop_host()
    with pytest.raises(AgentError):
        p.wait()
    assert os.read(p.stdout, 10) == b""        # the caller's fds see EOF
    for fd in (p.stdin, p.stdout, p.stderr):
        os.close(fd)
    assert not client.connected
    code, out, _ = run(client, ["echo", "again"])   # connects again, lazily
    assert (code, out) == (0, b"again\n")
    assert wait_for(lambda: not alive(pid))


def test_not_running_agent():
    relay = Relay()
    try:
        client = AgentClient(relay.host_path, connect_timeout=0.5)
        t0 = time.monotonic()
        assert not client.ready(0.5)
        with pytest.raises(AgentNotRunning) as e:
            client.exec(["true"], ENV)
        assert e.value.message == "LXD VM agent isn't currently running"
        assert time.monotonic() - t0 < 5
        gone = AgentClient(os.path.join(relay.dir, "no-such.sock"), connect_timeout=0.2)
        assert not gone.ready(0.2)
    finally:
        relay.close()


def test_agent_started_late_is_found():
    relay = Relay()
    agent = None
    client = AgentClient(relay.host_path, hostname="late")
    try:
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("ok", client.ready(10)))
        t.start()
        time.sleep(0.7)
        agent = Agent(relay)
        t.join(15)
        assert result.get("ok") is True
        assert run(client, ["hostname"])[1] == b"late\n"
    finally:
        client.close()
        if agent:
            agent.stop()
        relay.close()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_garbage_alone_on_the_link_is_skipped():
    """Bytes that are no frame (a dead client's, line noise), read by the agent on their own."""
    relay = Relay(hangup=False)
    agent = Agent(relay)
    client = AgentClient(relay.host_path, hostname="after-garbage")
    try:
        assert wait_for(lambda: relay.guest is not None)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(relay.host_path)
            s.sendall(bytes(5000) + b"\xc0\xa6" + os.urandom(3000) + b"\xc0")
            time.sleep(0.5)
        before = _cpu_seconds(agent.proc.pid)
        time.sleep(1)
        assert _cpu_seconds(agent.proc.pid) - before < 0.3, "the agent spins on garbage"
        client.connect(10)
        assert run(client, ["hostname"])[1] == b"after-garbage\n"
    finally:
        client.close()
        agent.stop()
        relay.close()


def _fds(pid="self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_no_fd_leaks_on_either_side(vm):
    _, agent, client, scratch = vm
    path = os.path.join(scratch, "f")
    with open(path, "wb") as f:
        f.write(os.urandom(3 << 20))
    run(client, ["true"])
    ours, theirs = _fds(), _fds(agent.proc.pid)
    for _ in range(10):
        assert run(client, ["sh", "-c", "echo x; echo y >&2"])[0] == 0
        p = client.exec(["sh", "-c", "read x; exit 4"], ENV, interactive=True)
        os.write(p.pty, b"\n")
        assert p.wait() == 4
        os.close(p.pty)
        e = client.file_get(path)
        e.file.read(10)
        e.file.close()                       # abandoned half-way
        e = client.file_get(scratch)
        client.file_put(path + ".copy", "file", b"data")
        with pytest.raises(AgentError):
            client.exec(["true"], ENV, cwd="/nonexistent")
        with pytest.raises(AgentFileError):
            client.file_get("/nonexistent")
    assert wait_for(lambda: _fds() <= ours and _fds(agent.proc.pid) <= theirs, timeout=5), \
        (ours, _fds(), theirs, _fds(agent.proc.pid))


def test_daemon_mode_and_one_agent_per_lock():
    """Without --foreground it detaches (logging to --log); a second agent on the same lock exits
    at once, as an init's respawn loop around the first would start it."""
    from agentrelay import AGENT
    relay = Relay()
    lock = os.path.join(relay.dir, "agent.lock")
    log = os.path.join(relay.dir, "agent.log")
    args = [AGENT, "--port", relay.guest_path, "--devlxd", "", "--lock", lock, "--log", log]
    client = AgentClient(relay.host_path, hostname="daemon")
    pid = None
    try:
        assert subprocess.run(["unshare", "--uts", *args], timeout=10).returncode == 0   # detached
        assert wait_for(lambda: os.path.exists(lock) and open(lock).read().strip().isdigit())
        pid = int(open(lock).read())
        assert alive(pid)
        second = subprocess.run(args, timeout=10, stderr=subprocess.PIPE, text=True)
        assert second.returncode == 1 and "another agent holds" in second.stderr
        assert client.ready(10)
        assert run(client, ["hostname"])[1] == b"daemon\n"
        assert client.agent_pid == pid
        assert wait_for(lambda: "host connected" in open(log).read())   # the detached agent logs as it goes
    finally:
        client.close()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not alive(pid), timeout=5)
        relay.close()
