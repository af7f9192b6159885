"""exec runs through corral-attach (a small exec'd helper on liblxc's attach, not a clone of the
daemon): what the command gets, through the real lxc client. The environment is the one given and
nothing of the daemon's; the pty is the container's own, owned by the exec user, the command's
controlling tty and fds 0-2; exit codes 126/127 and 128+N; the command runs in the container's
cgroup and is reaped (no zombie left); the daemon's thread count does not grow with running
containers (one watcher for every monitor)."""
import os
import re
import subprocess
import sys

import pytest

from helpers import unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ct(host):
    name = unique("exh")
    host.lxc("launch", "busybox", name)
    yield host, name
    host.lxc("delete", "-f", name, check=False)


def _pty(host, name: str, script: str, *flags: str) -> str:
    """Run `script` through `lxc exec` on a terminal (script(1) gives lxc a pty)."""
    cmd = " ".join(["lxc", "exec", *flags, name, "--", "sh", "-c", f"'{script}'"])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=host.env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    return r.stdout.replace("\r", "")


def test_environment_is_only_what_is_given(ct):
    host, name = ct
    env = dict(line.split("=", 1) for line in host.lxc("exec", name, "--env", "FOO=bar", "--", "env")
               .stdout.splitlines())
    assert env["FOO"] == "bar" and env["HOME"] == "/root" and env["PATH"].startswith("/usr/local/sbin")
    assert not set(env) & {"CORRAL_DIR", "LXD_SOCKET", "PYTHONPATH", "VIRTUAL_ENV"}, env
    assert set(env) <= {"FOO", "HOME", "PATH", "USER", "LANG", "TERM", "container"}, env


def test_exit_codes(ct):
    host, name = ct
    r = host.lxc("exec", name, "--", "/no/such/thing", check=False)
    assert r.returncode == 127 and "No such file or directory" in r.stderr
    r = host.lxc("exec", name, "--", "/etc/passwd", check=False)   # not executable
    assert r.returncode == 126 and "Permission denied" in r.stderr
    assert host.lxc("exec", name, "--", "sh", "-c", "kill -TERM $$", check=False).returncode == 128 + 15
    assert host.lxc("exec", name, "--", "sh", "-c", "exit 42", check=False).returncode == 42


def test_pty_is_the_controlling_tty_of_the_command(ct):
    host, name = ct
    # fields of /proc/self/stat: 6 session, 7 tty_nr; the shell leads its session, on the pty,
    # and the pty is the container's /dev/pts/N, owned by the exec user
    out = _pty(host, name, "echo T=$(tty); echo U=$(stat -c %u /proc/self/fd/0); set -- $(cat /proc/$$/stat); "
               "echo S=$6 P=$$ N=$7; echo O=$(readlink /proc/$$/fd/1)", "--user", "1000")
    # (what the terminal echoes of the client's own input, ^@, may precede a line)
    got = dict(kv.split("=", 1) for kv in re.findall(r"\b[TUSPNO]=\S+", out))
    assert got["T"].startswith("/dev/pts/"), out
    assert got["U"] == "1000", out
    assert got["S"] == got["P"] and got["N"] != "0", out
    assert got["O"] == got["T"], out   # stdout is the same pty, not a proxy of lxc-attach's


def test_command_in_container_cgroup_and_reaped(ct):
    host, name = ct
    # in the container's cgroup namespace, its own cgroup (init's) is "/": one outside it would
    # show as "/../.." (the unified line is liblxc's ".lxc" leaf)
    out = host.lxc("exec", name, "--", "cat", "/proc/self/cgroup", "/proc/1/cgroup").stdout.splitlines()
    mine, init = out[:len(out) // 2], out[len(out) // 2:]
    v1 = [line for line in mine if not line.startswith("0::")]
    assert v1 and v1 == [line for line in init if not line.startswith("0::")], out
    assert all(line.endswith(":/") for line in v1), out
    # on v2, liblxc's leaf for attached processes (the container's init is at its root)
    assert all(line == "0::/.lxc" for line in mine if line.startswith("0::")), out
    zombies = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) == host.proc.pid:
            zombies.append(pid)
    # none of the execs above left a zombie behind (the helper and the command are reaped at once)
    assert zombies == []


def test_threads_do_not_grow_with_running_containers(host):
    """One watcher thread for every monitor: 12 more running containers add fewer than 12 threads
    (a thread per container would add at least 12; the event loop's executor may add up to
    min(32, cpus + 4) workers under load, which is fewer here)."""
    def threads() -> int:
        return len(os.listdir(f"/proc/{host.proc.pid}/task"))
    more = 12
    assert min(32, (os.cpu_count() or 1) + 4) < more
    names = [unique("thr") for _ in range(more + 1)]
    try:
        host.lxc("launch", "busybox", names[0])
        before = threads()
        for n in names[1:]:
            host.lxc("launch", "busybox", n)
        assert threads() < before + more
    finally:
        host.lxc("delete", "-f", *names, check=False)


FALLBACK = """
import os, sys
from corral.instance.drivers import lxcexec
from corral.reaper import become_subreaper
become_subreaper()   # the command is orphaned to us when the helper exits
lxcpath, name, conf = sys.argv[1:4]
r, w = os.pipe()
null = os.open("/dev/null", os.O_RDWR)
pid = lxcexec.attach(lxcpath, name, conf, ["cat", "/proc/self/cgroup"], {"PATH": "/bin"}, "/", 0, 0,
                     False, (null, w, w), [])
os.close(w)
out = b""
while chunk := os.read(r, 4096):
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode() + f"exit={os.waitstatus_to_exitcode(status)}\\n")
"""


def test_without_cgroup_dirs_liblxc_moves_the_command(ct):
    """The helper's fall-back (a cgroup layout the daemon does not understand): liblxc's own move."""
    host, name = ct
    lxcpath = os.path.join(host.dir, "containers")
    conf = os.path.join(host.dir, "logs", name, "lxc.conf")
    r = subprocess.run([sys.executable, "-c", FALLBACK, lxcpath, name, conf], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "exit=0"
    v1 = [line for line in lines[:-1] if not line.startswith("0::")]
    assert v1 and all(line.endswith(":/") for line in v1), r.stdout
