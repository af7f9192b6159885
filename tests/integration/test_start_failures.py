"""Issue 11, acceptance 5: a start that fails half-way reports why and leaves nothing behind.

Each case makes an instance whose start fails after some of its devices were set up (a NIC on a
managed bridge of the test's own is always started first), then checks, against the host's own
tables, that the failed start left no mount, link, nftables rule, cgroup or process: once after
the API start, once after `lxc start`, and again after the instance was deleted at once.

Other tests may run on this machine at the same time, so the host tables are read through what
belongs to this test: its instance name, its daemon's directory and source paths, its bridge.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest

from helpers import unique, wait_for

pytestmark = pytest.mark.integration

CGROUP_ROOT = "/sys/fs/cgroup"


def sh(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True).stdout


def _cgroups(name: str) -> list[str]:
    """Cgroup directories (every v1 hierarchy and cgroup2) whose name mentions `name`, to depth 4."""
    found = []

    def walk(path: str, depth: int) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                if name in e.name:
                    found.append(e.path)
                if depth < 4:
                    walk(e.path, depth + 1)
    walk(CGROUP_ROOT, 0)
    return sorted(found)


def _mounts(needles: list[str]) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[3:5]) for line in f if any(n in line for n in needles))


def _links(bridge: str, name: str) -> list[str]:
    """Interfaces in the test's bridge, and any whose details mention the instance."""
    enslaved = sh("ip", "-br", "link", "show", "master", bridge).split("\n")
    out = [line.split()[0] for line in enslaved if line.strip()]
    out += [line.split()[0] for line in sh("ip", "-br", "link").splitlines() if name in line]
    return sorted(out)


def _nft(bridge: str, name: str, hosts: list[str]) -> list[str]:
    """The ruleset lines of the test's bridge table, and any line naming the instance or its host
    interfaces (counters masked: packets may flow)."""
    lines, in_table = [], False
    for line in sh("nft", "list", "ruleset").splitlines():
        if line.startswith("table "):
            in_table = line.split()[-2].endswith(bridge)
        masked = re.sub(r"counter packets \d+ bytes \d+", "counter", line)
        if in_table or name in line or any(h in line for h in hosts):
            lines.append(masked)
    return lines


def _processes(name: str, daemon_pid: int) -> list[str]:
    """Processes whose command line names the instance, and zombie children of the daemon."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if name in cmd:
            out.append(f"{pid} {cmd.strip()}")
        elif fields[0] == "Z" and int(fields[1]) == daemon_pid:
            out.append(f"{pid} <zombie child of corrald>")
    return sorted(out)


class Case:
    def __init__(self, d, bridge: str, name: str, needles: list[str]):
        self.d, self.bridge, self.name, self.needles = d, bridge, name, needles
        self.hosts: list[str] = []   # host-side interface names the instance was given

    def state(self) -> dict:
        inst = self.d.get(f"/1.0/instances/{self.name}").json.get("metadata") or {}
        self.hosts += [v for k, v in (inst.get("config") or {}).items()
                       if k.endswith(".host_name") and v and v not in self.hosts]
        return {"mounts": _mounts([self.name] + self.needles),
                "links": _links(self.bridge, self.name) + [h for h in self.hosts if _exists(h)],
                "nft": _nft(self.bridge, self.name, self.hosts),
                "cgroups": _cgroups(self.name),
                "processes": _processes(self.name, self.d.proc.pid)}


def _exists(link: str) -> bool:
    return subprocess.run(["ip", "link", "show", link], capture_output=True).returncode == 0


def _same(before: dict, after_fn, what: str) -> None:
    """The host state is back as it was (waiting a little: liblxc's monitor exits asynchronously)."""
    last = {}

    def same():
        last.update(after_fn())
        return last == before
    try:
        wait_for(same, timeout=5, interval=0.1)
    except AssertionError:
        pass
    diff = {k: {"before": before[k], "after": last[k]} for k in before if before[k] != last[k]}
    assert not diff, f"{what} left behind: {diff}"


@pytest.fixture(scope="module")
def bridge(host):
    name = "sf" + uuid.uuid4().hex[:8]
    host.lxc("network", "create", name, "ipv4.address=none", "ipv6.address=none")
    try:
        yield name
    finally:
        host.lxc("network", "delete", name, check=False)


@pytest.fixture
def case(host, bridge, tmp_path):
    made = []

    def make(devices: dict | None = None, config: dict | None = None, needles: list[str] = ()) -> Case:
        name = unique("sf")
        made.append(name)
        host.lxc("init", "busybox", name)
        host.lxc("config", "device", "add", name, "eth0", "nic", f"network={bridge}")
        for dev, conf in (devices or {}).items():
            conf = dict(conf)
            host.lxc("config", "device", "add", name, dev, conf.pop("type"), *[f"{k}={v}" for k, v in conf.items()])
        for k, v in (config or {}).items():
            host.lxc("config", "set", name, f"{k}={v}")
        return Case(host, bridge, name, [host.dir + "/storage-pools/default/containers/" + name] + list(needles))
    yield make
    for name in made:
        host.lxc("delete", "-f", name, check=False)


def fails_cleanly(c: Case, reason: str, prepare=None) -> None:
    """Start through the API, then with `lxc start`: both fail with `reason`; nothing is left;
    the instance can be deleted at once and is gone without a trace."""
    before = c.state()
    if prepare:
        prepare()
    d = c.d
    r = d.request("PUT", f"/1.0/instances/{c.name}/state", {"action": "start", "timeout": 30})
    assert r.status == 202, r.body
    op = d.wait_op(r)
    assert op["status"] == "Failure", op
    assert reason in op["err"], op["err"]
    assert d.get(f"/1.0/instances/{c.name}").metadata["status"] == "Stopped"
    _same(before, c.state, "a failed API start")
    res = d.lxc("start", c.name, check=False)
    assert res.returncode != 0 and reason in res.stderr, res.stderr
    _same(before, c.state, "a failed `lxc start`")
    d.lxc("delete", c.name)   # at once, without --force
    assert d.get(f"/1.0/instances/{c.name}").status == 404
    _same(before, c.state, "deleting the instance")


def test_disk_source_vanished(host, case):
    """An idmapped disk and the NIC are set up first; the vanished one fails the start. (The
    sources are outside the daemon's directory: error texts shorten paths under it.)"""
    base = tempfile.mkdtemp(prefix="corral-test-sf-", dir="/var/tmp")
    os.chmod(base, 0o711)   # container roots must traverse it
    kept, gone = os.path.join(base, "keep"), os.path.join(base, "gone")
    os.mkdir(kept, 0o755)
    os.mkdir(gone, 0o755)
    try:
        c = case({"data": {"type": "disk", "source": kept, "path": "/mnt/data", "shift": "true"},
                  "zgone": {"type": "disk", "source": gone, "path": "/mnt/gone"}}, needles=[kept, gone])
        fails_cleanly(c, f'source path "{gone}" doesn\'t exist', prepare=lambda: os.rmdir(gone))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_nic_on_missing_parent(host, case):
    missing = "sfx" + uuid.uuid4().hex[:8]
    c = case({"zeth": {"type": "nic", "nictype": "bridged", "parent": missing}})
    fails_cleanly(c, f'Parent interface "{missing}" not found')


def test_nic_on_network_whose_bridge_vanished(host, case):
    """A managed network whose bridge was removed behind the daemon's back."""
    net = "sv" + uuid.uuid4().hex[:8]
    host.lxc("network", "create", net, "ipv4.address=none", "ipv6.address=none")
    try:
        c = case({"zeth": {"type": "nic", "network": net}})
        fails_cleanly(c, f'Parent interface "{net}" not found',
                      prepare=lambda: subprocess.run(["ip", "link", "del", net], check=True))
    finally:
        host.lxc("network", "delete", net, check=False)


def test_rootfs_without_init(host, case):
    c = case()
    init = os.path.join(host.dir, "storage-pools/default/containers", c.name, "rootfs/sbin/init")
    fails_cleanly(c, "/sbin/init", prepare=lambda: os.unlink(init))


def test_rootfs_removed(host, case):
    c = case()
    rootfs = os.path.join(host.dir, "storage-pools/default/containers", c.name, "rootfs")
    fails_cleanly(c, "rootfs", prepare=lambda: shutil.rmtree(rootfs))


@pytest.mark.parametrize("line,reason", [
    ("lxc.mount.entry = /nonexistent-{u} mnt/x none bind,create=dir 0 0", "nonexistent-{u}"),
    ("lxc.cgroup.memory.nosuchfile{u} = 1", "memory.nosuchfile{u}"),
])
def test_raw_lxc_refused_by_liblxc(host, case, line, reason):
    u = uuid.uuid4().hex[:6]
    c = case(config={"raw.lxc": line.format(u=u)})
    fails_cleanly(c, reason.format(u=u))


def test_the_probes_see_a_running_instance(host, case):
    """The checks above can fail: a running instance shows in every table they read (its veth in
    the bridge, its payload and monitor cgroups, its monitor process), and a stop clears them."""
    c = case()
    before = c.state()
    host.lxc("start", c.name)
    running = c.state()
    assert running["links"] and running["cgroups"] and running["processes"], running
    assert any("[lxc monitor]" in p for p in running["processes"]), running["processes"]
    assert any("lxc.payload." + c.name in p for p in running["cgroups"]), running["cgroups"]
    host.lxc("stop", c.name, "--force")
    _same(before, c.state, "a stop")


def test_proxy_failing_after_the_container_ran(host, case):
    """A failure after liblxc started the container (a proxy device whose listen address is
    taken): the container, its monitor and its devices are all taken down again."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        port = s.getsockname()[1]
        c = case({"web": {"type": "proxy", "listen": f"tcp:127.0.0.1:{port}", "connect": "tcp:127.0.0.1:80"}})
        fails_cleanly(c, "Address already in use")
    finally:
        s.close()
