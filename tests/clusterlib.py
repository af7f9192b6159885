"""A multi-member harness, as LXD's own test suite builds it: every member is a network namespace on
one host bridge, running a real corrald with a state directory of its own.

    with Cluster() as c:             # or the `cluster_factory` fixture (tests/cluster/conftest.py)
        a, b = c.add_members(2)      # namespaces, veths and corralds made in parallel
        a.lxc("cluster", "list")     # the real lxc client, through a's unix socket
        b.request("GET", "/1.0")     # REST over b's unix socket
        b.ns_run("curl", "-sk", f"https://{a.ip}:8443/1.0")   # from inside b's namespace

Names: bridge `crb<hex6>`, namespaces `crn<hex8>`, host veth ends `crv<hex8>` (the member's end is
`eth0` inside its namespace), dirs /var/tmp/corral-cluster-*. The bridge's /24 is drawn at random
from 10.200.0.0-10.250.255.0 and checked against the host's addresses and routes (never by
connecting: this machine accepts TCP to any address); the choice and the bridge's creation happen
under a lock file, so concurrent runs cannot pick the same subnet.

Everything made is recorded the moment it exists and `Cluster.cleanup()` (also run at exit) removes
it: processes (killed and reaped), namespaces (with every process still inside), veths, the bridge,
mounts and dirs; `Cluster.leftovers()` says what is still there.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import fcntl
import ipaddress
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import yaml

from helpers import VENV_BIN, Corrald, Response, UnixConn, unmount_under

LOCK_FILE = "/run/lock/corral-clusterlib.lock"
HTTPS_PORT = 8443
# The daemon members run: corrald, or (CORRAL_CLUSTER_DAEMON=lxd) Debian's real LXD 5.0.2, to check the
# acceptance tests' assumptions against LXD itself (its `lxd` takes the place of `corrald` for the
# subcommands: waitready, shutdown, init, sql, cluster ...).
DAEMON = os.environ.get("CORRAL_CLUSTER_DAEMON", "corrald")
if DAEMON not in ("corrald", "lxd"):
    raise RuntimeError(f"CORRAL_CLUSTER_DAEMON={DAEMON!r}: corrald or lxd")
ADMIN = os.path.join(VENV_BIN, "corrald") if DAEMON == "corrald" else (shutil.which("lxd") or "/usr/bin/lxd")
# cluster.offline_threshold the tests set: corrald documents a minimum of 2 s for tests; LXD wants > 10.
OFFLINE_THRESHOLD = 4 if DAEMON == "corrald" else 11


def sh(*args: str, check: bool = True, timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=input)
    if check and res.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def hexid(n: int) -> str:
    return uuid.uuid4().hex[:n]


@contextlib.contextmanager
def host_lock():
    """Serialises subnet choice + bridge creation between concurrent test runs on this host."""
    os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
    with open(LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address in or a route to (all tables)."""
    nets = []
    for link in json.loads(sh("ip", "-j", "addr").stdout or "[]"):
        for a in link.get("addr_info", []):
            if a.get("family") == "inet":
                nets.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    for r in json.loads(sh("ip", "-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        dst = r.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    return nets


def free_subnet(tries: int = 200) -> ipaddress.IPv4Network:
    taken = host_networks()
    for _ in range(tries):
        net = ipaddress.ip_network(f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("no free /24 in 10.200.0.0-10.250.255.0 on this host")


def host_cgroup_mounts() -> list[tuple[str, str, str]]:
    """(fstype, options, mountpoint) of the host's cgroup hierarchies under /sys/fs/cgroup."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            point = left.split()[4]
            fstype, _src, sopts = right.split()[:3]
            if point.startswith("/sys/fs/cgroup/") and fstype in ("cgroup", "cgroup2"):
                opts = [o for o in sopts.split(",") if o not in ("rw", "ro")]
                out.append((fstype, ",".join(opts), point))
            elif point == "/sys/fs/cgroup" and fstype == "cgroup2":
                out.append((fstype, "", point))
    return out


def cgroup_restore_script() -> str:
    """Shell that gives a fresh `ip netns exec` mount namespace the host's cgroup hierarchies back
    (`ip netns exec` mounts a new sysfs for the namespace, with an empty /sys/fs/cgroup)."""
    mounts = host_cgroup_mounts()
    if not mounts:
        return ""
    if mounts[0][2] == "/sys/fs/cgroup":   # pure cgroup2 host
        return "mount -t cgroup2 cgroup2 /sys/fs/cgroup"
    lines = ["mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup"]
    for fstype, opts, point in mounts:
        o = f"-o {shlex.quote(opts)} " if opts else ""
        lines.append(f"mkdir -p {shlex.quote(point)} && mount -t {fstype} {o}{fstype} {shlex.quote(point)}")
    return " && ".join(lines)


class Bridge:
    """A host bridge `crb<hex6>` with .1 of a free /24; hands out the member addresses."""

    def __init__(self):
        self.name = f"crb{hexid(6)}"
        self.net: ipaddress.IPv4Network | None = None
        self.created = False
        self._next = 2
        self._lock = threading.Lock()

    def create(self) -> "Bridge":
        with host_lock():
            self.net = free_subnet()
            sh("ip", "link", "add", self.name, "type", "bridge")
            self.created = True
            sh("ip", "addr", "add", f"{self.address}/{self.net.prefixlen}", "dev", self.name)
            sh("ip", "link", "set", self.name, "up")
        return self

    @property
    def address(self) -> str:
        return str(self.net.network_address + 1)

    def allocate(self) -> str:
        with self._lock:
            if self._next > 254:
                raise RuntimeError(f"bridge {self.name}: no address left in {self.net}")
            ip = str(self.net.network_address + self._next)
            self._next += 1
            return ip

    def delete(self) -> None:
        if self.created:
            sh("ip", "link", "del", self.name, check=False)
            self.created = False


class Member(Corrald):
    """One member: a netns `crn<hex8>` with a veth into the bridge and a corrald in its own dir.

    The daemon runs as `ip netns exec NS corrald --verbose` in a session of its own; its unix socket
    is a file in the member's dir, so the host reaches it directly (lxc, REST, corrald subcommands).
    """

    def __init__(self, cluster: "Cluster", index: int, ip: str, cgroups: bool = True):
        # Not Corrald.__init__: the dir is named for the harness. Containers need the chain 0711.
        self.dir = tempfile.mkdtemp(prefix="corral-cluster-", dir="/var/tmp")
        os.chmod(self.dir, 0o711)
        self.socket = os.path.join(self.dir, "unix.socket")
        self.proc: subprocess.Popen | None = None
        self.debug = False
        self.wrapper: list[str] = []
        self.cluster = cluster
        self.index = index
        self.name = f"m{index}"          # the server_name tests give it
        self.ip = ip
        h = hexid(8)
        self.ns = f"crn{h}"
        self.veth = f"crv{h}"
        self.ns_made = False
        self.veth_made = False
        self.cgroups = cgroups
        self.logpath = os.path.join(self.dir, "corrald.log")
        self.log = None
        self.procs: list[subprocess.Popen] = []   # every daemon process we started (all reaped)
        self.env = dict(os.environ, CORRAL_DIR=self.dir, LXD_SOCKET=self.socket, LXD_DIR=self.dir,
                        LXD_CONF=os.path.join(self.dir, "lxc-client"))
        for k in ("CORRAL_SOCKET", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            self.env.pop(k, None)

    def __repr__(self) -> str:
        return f"<Member {self.name} {self.ip} ns={self.ns} dir={self.dir}>"

    @property
    def address(self) -> str:
        return f"{self.ip}:{HTTPS_PORT}"

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    # ---- network ---------------------------------------------------------------------------------
    def make_netns(self) -> None:
        sh("ip", "netns", "add", self.ns)
        self.ns_made = True
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
        self.veth_made = True
        sh("ip", "link", "set", self.veth, "master", self.cluster.bridge.name, "up")
        prefix = self.cluster.bridge.net.prefixlen
        sh("ip", "-n", self.ns, "addr", "add", f"{self.ip}/{prefix}", "dev", "eth0")
        sh("ip", "-n", self.ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")

    def ns_cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *args]

    def ns_run(self, *args: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command inside this member's network namespace."""
        return sh(*self.ns_cmd(*args), check=check, timeout=timeout)

    def https_get(self, target: "Member | str", path: str = "/1.0", timeout: float = 5) -> tuple[int, dict | None]:
        """GET over HTTPS from inside this member's namespace to `target` (a member or "ip:port"),
        untrusted (no client certificate, server certificate not checked). Returns (status, body)."""
        address = target.address if isinstance(target, Member) else target
        res = self.ns_run("curl", "-sk", "--max-time", str(timeout), "-o", "-", "-w", "\n%{http_code}",
                          f"https://{address}{path}", timeout=timeout + 10)
        body, _, code = res.stdout.rpartition("\n")
        try:
            return int(code or 0), (json.loads(body) if body.strip() else None)
        except ValueError:
            return int(code or 0), None

    # ---- the daemon ------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _argv(self) -> list[str]:
        corrald = [ADMIN, "--debug" if self.debug else "--verbose"]
        if DAEMON == "lxd":
            corrald += ["--group", "root", "--logfile", os.path.join(self.dir, "lxd.log")]
        script = cgroup_restore_script() if self.cgroups else ""
        if not script:
            return self.ns_cmd(*corrald)
        return self.ns_cmd("sh", "-c", script + ' && exec "$@"', "corrald-in-netns", *corrald)

    def start(self, timeout: float = 30) -> "Member":
        """Start corrald (again, with the same dir after a kill or a shutdown) and wait until ready."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        if self.running():
            raise RuntimeError(f"{self}: corrald already runs (pid {self.proc.pid})")
        self.log = open(self.logpath, "ab")
        self.log.write(f"---- harness: start {time.strftime('%H:%M:%S')} ----\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen(self._argv(), env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(self.proc)

    def wait_ready(self, timeout: float = 30) -> None:
        """`corrald waitready` on the host; fails at once (with the log) if the daemon exits first."""
        w = subprocess.Popen([ADMIN, "waitready", "--timeout", str(int(timeout))],
                             env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            while w.poll() is None:
                if not self.running():
                    raise AssertionError(f"{self}: corrald exited ({self.proc.returncode}) before ready:\n"
                                         f"{self.log_tail()}")
                time.sleep(0.05)
            out = w.stdout.read()
        finally:
            if w.poll() is None:
                w.kill()
            w.wait()
            w.stdout.close()
        if w.returncode != 0:
            raise AssertionError(f"{self}: corrald waitready failed ({w.returncode}): {out}\n{self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL the daemon (its whole session) and reap it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._closelog()

    def shutdown(self, timeout: float = 60) -> subprocess.CompletedProcess:
        """Graceful `corrald shutdown` (run on the host); returns its result, the daemon reaped."""
        res = self.run("corrald", "shutdown", "--timeout", str(int(timeout)), timeout=timeout + 30)
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self._closelog()
        return res

    def stop(self, timeout: float = 60) -> int | None:
        if self.running():
            self.shutdown(timeout)
        rc = self.proc.returncode if self.proc is not None else None
        self._closelog()
        return rc

    def restart(self, timeout: float = 30) -> "Member":
        if self.running():
            self.shutdown()
        return self.start(timeout)

    def _closelog(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def log_tail(self, n: int = 60) -> str:
        out = []
        for path in (self.logpath, os.path.join(self.dir, "lxd.log")):
            try:
                with open(path, "rb") as f:
                    out.append(b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace"))
            except OSError:
                pass
        return "\n".join(out) or "(no log)"

    def run(self, *args: str, check: bool = False, input: str | None = None, timeout: float = 120):
        """A command on the host with this member's environment (`corrald` = the member's daemon binary)."""
        cmd = list(args)
        if cmd[0] == "corrald":
            cmd[0] = ADMIN
        res = subprocess.run(cmd, env=self.env, capture_output=True, text=True, input=input, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{self.name}: {shlex.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    # ---- talking to it ---------------------------------------------------------------------------
    def corrald(self, *args: str, check: bool = False, input: str | None = None, timeout: float = 120):
        return self.run("corrald", *args, check=check, input=input, timeout=timeout)

    def sql(self, db: str, query: str, check: bool = True, timeout: float = 60):
        """`corrald sql local|global QUERY` (LXD 5.0's `lxd sql` prints a table: parse_sql_table)."""
        return self.corrald("sql", db, query, check=check, timeout=timeout)

    def request(self, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None,
                timeout: float = 60) -> Response:
        conn = UnixConn(self.socket, timeout=timeout)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            conn.request(method, path, body=data, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, r.headers, r.read())
        finally:
            conn.close()

    def preseed(self, doc: dict | str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """`corrald init --preseed` with `doc` (a dict is dumped as YAML) on stdin."""
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
        return self.corrald("init", "--preseed", input=text, check=check, timeout=timeout)

    def set_https_address(self) -> None:
        self.lxc("config", "set", "core.https_address", self.address)

    def cleanup(self) -> None:
        """Kill the daemon, remove the namespace (and every process in it), the veth and the dir."""
        self.kill9()
        for p in self.procs:   # any earlier incarnation
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        if self.ns_made:
            kill_netns_procs(self.ns)
            sh("ip", "netns", "del", self.ns, check=False)
            self.ns_made = False
        if self.veth_made:
            if os.path.exists(f"/sys/class/net/{self.veth}"):
                sh("ip", "link", "del", self.veth, check=False)
            self.veth_made = False
        if os.path.isdir(self.dir):
            unmount_under(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)


def netns_pids(ns: str) -> list[int]:
    res = sh("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in res.stdout.split() if p.isdigit()]


def kill_netns_procs(ns: str, timeout: float = 5) -> None:
    """SIGKILL every process in namespace `ns` and wait until they are gone."""
    deadline = time.monotonic() + timeout
    while True:
        pids = netns_pids(ns)
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


class Cluster:
    """The bridge and its members. Use as a context manager, or call cleanup() (also run at exit)."""

    def __init__(self, cgroups: bool = True):
        self.bridge = Bridge()
        self.members: list[Member] = []
        self.removed: list[Member] = []   # members cleaned up early (cleanup() checks them too)
        self.cgroups = cgroups
        self._lock = threading.Lock()
        self._index = 0
        self._cleaned = False
        atexit.register(self.cleanup)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def _ensure_bridge(self) -> None:
        with self._lock:
            if not self.bridge.created:
                self.bridge.create()

    def new_member(self) -> Member:
        """A member object with its namespace and veth made, corrald not started."""
        self._ensure_bridge()
        with self._lock:
            self._index += 1
            m = Member(self, self._index, self.bridge.allocate(), cgroups=self.cgroups)
            self.members.append(m)   # recorded before anything is made: cleanup covers half-made ones
        m.make_netns()
        return m

    def add_member(self, start: bool = True, https: bool = True, timeout: float = 30) -> Member:
        """A member with corrald started (and listening on its IP:8443 when `https`)."""
        m = self.new_member()
        if start:
            m.start(timeout)
            if https:
                m.set_https_address()
        return m

    def add_members(self, n: int, start: bool = True, https: bool = True, timeout: float = 30) -> list[Member]:
        """`n` members made in parallel (threads), in index order."""
        self._ensure_bridge()
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(n, 8)) as ex:
            futures = [ex.submit(self.add_member, start, https, timeout) for _ in range(n)]
            out = [f.result() for f in futures]   # first failure raises; cleanup() covers the rest
        return sorted(out, key=lambda m: m.index)

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def running(self) -> list[Member]:
        return [m for m in self.members if m.running()]

    def forget(self, m: Member) -> None:
        """Clean up one member now (e.g. after it left the cluster)."""
        m.cleanup()
        if m in self.members:
            self.members.remove(m)
            self.removed.append(m)

    def made(self) -> dict:
        """What this cluster made, for leftovers(): names, pids and dirs."""
        every = self.members + self.removed
        return {"bridge": self.bridge.name, "netns": [m.ns for m in every], "veths": [m.veth for m in every],
                "pids": [p.pid for m in every for p in m.procs], "dirs": [m.dir for m in every]}

    def cleanup(self) -> None:
        """Idempotent; an interrupted cleanup is finished by the next call (or at exit)."""
        if self._cleaned:
            return
        every = self.members + self.removed
        for m in every:   # kill all first: no member keeps waiting on a dead peer during the teardown
            with contextlib.suppress(Exception):
                m.kill9()
        errors = []
        for m in every:
            try:
                m.cleanup()
            except Exception as e:   # go on: the bridge and the other members must still go
                errors.append(f"{m}: {e}")
        self.bridge.delete()
        self._cleaned = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.cleanup)
        if errors:
            raise RuntimeError("cluster cleanup: " + "; ".join(errors))


def leftovers(made: dict) -> list[str]:
    """What of `Cluster.made()` still exists on the host (should be nothing after cleanup())."""
    out = []
    netns = set(sh("ip", "netns", "list").stdout.split())
    out += [f"netns {n}" for n in made["netns"] if n in netns]
    out += [f"link {n}" for n in [made["bridge"], *made["veths"]] if os.path.exists(f"/sys/class/net/{n}")]
    for pid in made["pids"]:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            out.append(f"pid {pid} ({'zombie' if state == 'Z' else 'alive'})")
        except OSError:
            pass
    out += [f"dir {d}" for d in made["dirs"] if os.path.exists(d)]
    return out


# ---- cluster-level helpers the acceptance tests and the benchmark share -------------------------------

def members_api(m: Member, timeout: float = 30) -> list[dict]:
    """`GET /1.0/cluster/members?recursion=1` on member `m` (raises on an error answer)."""
    r = m.request("GET", "/1.0/cluster/members?recursion=1", timeout=timeout)
    if r.status != 200:
        raise AssertionError(f"{m.name}: GET /1.0/cluster/members: {r.status} {r.body[:300]!r}")
    return r.metadata


def members_lxc(m: Member, timeout: float = 60) -> list[dict]:
    """`lxc cluster list --format yaml` on member `m`: the members as LXD's api.ClusterMember."""
    return yaml.safe_load(m.lxc("cluster", "list", "--format", "yaml", timeout=timeout).stdout) or []


def by_name(members: list[dict]) -> dict[str, dict]:
    return {x["server_name"]: x for x in members}


def role_counts(members: list[dict]) -> dict[str, int]:
    """Voters ("database"), stand-bys ("database-standby") and leaders ("database-leader")."""
    roles = [r for x in members for r in (x.get("roles") or [])]
    return {"voters": roles.count("database"), "standby": roles.count("database-standby"),
            "leaders": roles.count("database-leader")}


def leader_name(m: Member, timeout: float = 30) -> str | None:
    """The member whose roles include "database-leader", as member `m` reports it."""
    names = [x["server_name"] for x in members_api(m, timeout) if "database-leader" in (x.get("roles") or [])]
    return names[0] if len(names) == 1 else None


def token_for(m: Member, name: str) -> str:
    """`lxc cluster add NAME --quiet` on `m`: only the join token is printed."""
    return m.lxc("cluster", "add", name, "--quiet").stdout.strip()


def bootstrap_preseed(m: Member) -> dict:
    return {"config": {"core.https_address": m.address},
            "cluster": {"server_name": m.name, "enabled": True}}


def join_preseed(m: Member, via: Member, token: str | None = None, password: str | None = None,
                 cert_path: str | None = None) -> dict:
    """LXD's join preseed: `cluster: {enabled, server_name, server_address, cluster_address,
    cluster_certificate | cluster_certificate_path, cluster_token | cluster_password}`. With a token,
    the cluster address and certificate come from the token (LXD does the same)."""
    c: dict = {"enabled": True, "server_name": m.name, "server_address": m.address}
    if token is not None:
        c["cluster_token"] = token
    else:
        c["cluster_address"] = via.address
        if cert_path is not None:
            c["cluster_certificate_path"] = cert_path
        else:
            with open(os.path.join(via.dir, "cluster.crt")) as f:
                c["cluster_certificate"] = f.read()
        c["cluster_password"] = password
    return {"cluster": c}


def bootstrap(m: Member) -> None:
    m.preseed(bootstrap_preseed(m))


def join(m: Member, via: Member) -> None:
    """Join `m` through a token made on `via` (the usual LXD 5.0 way)."""
    m.preseed(join_preseed(m, via, token=token_for(via, m.name)))


def form(cluster: Cluster, n: int, timeout: float = 30) -> list[Member]:
    """n members (started in parallel), the first bootstrapped, the others joined one by one with
    tokens; returns them once every member lists all n Online."""
    ms = cluster.add_members(n, https=False, timeout=timeout)
    bootstrap(ms[0])
    for m in ms[1:]:
        join(m, ms[0])
    wait_all_online(ms, n, timeout=60)
    return ms


def wait_all_online(ms: list[Member], n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            views = [members_api(m, timeout=10) for m in ms]
            last = views
            if all(len(v) == n and all(x["status"] == "Online" for x in v) for v in views):
                return
        except (AssertionError, OSError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"not all {n} members Online on every member within {timeout}s: {last}")


def wait_status(m: Member, name: str, status: str, timeout: float) -> float:
    """Poll `GET /1.0/cluster/members/NAME` on `m` until its status is `status`; seconds it took."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        r = m.request("GET", f"/1.0/cluster/members/{name}", timeout=10)
        if r.status == 200:
            last = r.metadata.get("status")
            if last == status:
                return time.monotonic() - t0
        else:
            last = f"{r.status} {r.body[:200]!r}"
        time.sleep(0.1)
    raise AssertionError(f"{name} not {status} on {m.name} within {timeout}s (last: {last})")


def heartbeat_counters(m: Member) -> dict:
    """`GET /internal/testing/heartbeat` on the unix socket: {"rounds", "sent", "received"}."""
    r = m.request("GET", "/internal/testing/heartbeat", timeout=10)
    if r.status != 200:
        raise AssertionError(f"{m.name}: GET /internal/testing/heartbeat: {r.status} {r.body[:300]!r}")
    return r.metadata


def hold_heartbeat(m: Member, hold: bool) -> None:
    r = m.request("POST", "/internal/testing/heartbeat", {"hold": hold}, timeout=10)
    if r.status != 200:
        raise AssertionError(f"{m.name}: POST /internal/testing/heartbeat {hold}: {r.status} {r.body[:300]!r}")


def set_server_config(m: Member, keys: dict[str, str]) -> None:
    """PATCH /1.0 with server keys (e.g. {"cluster.offline_threshold": "4"})."""
    r = m.request("PATCH", "/1.0", {"config": keys})
    if r.status != 200:
        raise AssertionError(f"{m.name}: PATCH /1.0 {keys}: {r.status} {r.body[:300]!r}")


def parse_sql_table(out: str) -> list[list[str]]:
    """The rows of `lxd sql`'s table output (`| a | b |` lines; the header row dropped)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in out.splitlines() if line.startswith("|")]
    return rows[1:]


def temp_file(text: str, suffix: str = "") -> str:
    fd, path = tempfile.mkstemp(prefix="corral-cluster-", suffix=suffix, dir="/var/tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def members_csv(m: Member) -> list[dict]:
    """`lxc cluster list --format csv`: NAME, URL, ROLES (comma-joined), ARCHITECTURE, FAILURE DOMAIN,
    DESCRIPTION, STATE (upper case), MESSAGE, as LXD 5.0's client prints them."""
    import csv
    import io
    cols = ["name", "url", "roles", "architecture", "failure_domain", "description", "state", "message"]
    rows = csv.reader(io.StringIO(m.lxc("cluster", "list", "--format", "csv").stdout))
    return [dict(zip(cols, r)) for r in rows if r]


def wait_roles(m: Member, n: int, voters: int, standby: int, timeout: float = 15) -> list[dict]:
    """Poll `GET /1.0/cluster/members` on `m` until it lists n members, all Online, with that many
    voters and stand-bys and one leader; returns the members."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            ms = members_api(m, timeout=10)
            last = [(x["server_name"], x["status"], x.get("roles")) for x in ms]
            if (len(ms) == n and all(x["status"] == "Online" for x in ms)
                    and role_counts(ms) == {"voters": voters, "standby": standby, "leaders": 1}):
                return ms
        except (AssertionError, OSError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{m.name}: not {n} Online members with {voters} voters, {standby} stand-by and "
                         f"a leader within {timeout}s: {last}")


def wait_leader(ms: list[Member], among: list[Member] | None = None, timeout: float = 15,
                not_: str | None = None) -> Member:
    """The leader as every member of `ms` reports it (roles "database-leader"), once they agree and
    it is one of `among` (default: ms) and not named `not_`."""
    among = among or ms
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            views = {m.name: leader_name(m, timeout=5) for m in ms}
            last = views
            names = set(views.values())
            if len(names) == 1:
                name = names.pop()
                if name and name != not_ and name in [a.name for a in among]:
                    return next(a for a in among if a.name == name)
        except (AssertionError, OSError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"no agreed leader within {timeout}s: {last}")


def profile_names(m: Member, timeout: float = 30) -> set[str]:
    r = m.request("GET", "/1.0/profiles", timeout=timeout)
    if r.status != 200:
        raise AssertionError(f"{m.name}: GET /1.0/profiles: {r.status} {r.body[:300]!r}")
    return {u.rsplit("/", 1)[1] for u in r.metadata}


def raft_nodes(m: Member) -> list[dict]:
    """The member's local `raft_nodes` table (`corrald sql local`): [{id, address, role, name}]."""
    rows = parse_sql_table(m.sql("local", "SELECT id, address, role, name FROM raft_nodes ORDER BY id").stdout)
    return [{"id": int(r[0]), "address": r[1], "role": int(r[2]), "name": r[3]} for r in rows]


def wrong_certificate(ip: str) -> str:
    """A self-signed certificate (PEM) valid for `ip`, which is not the cluster's."""
    d = tempfile.mkdtemp(prefix="corral-cluster-cert-", dir="/var/tmp")
    try:
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
           "-keyout", f"{d}/k.pem", "-out", f"{d}/c.pem", "-days", "2", "-subj", "/CN=not-the-cluster",
           "-addext", f"subjectAltName=IP:{ip}")
        with open(f"{d}/c.pem") as f:
            return f.read()
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Attempt:
    __slots__ = ("start", "end", "name", "ok", "error")

    def __init__(self, start, end, name, ok, error):
        self.start, self.end, self.name, self.ok, self.error = start, end, name, ok, error

    def __repr__(self):
        return f"<{self.name} {'ok' if self.ok else self.error} {self.start:.3f}-{self.end:.3f}>"


class Writer(threading.Thread):
    """A steady write load on one member: creates profiles `w-<tag>-<seq>` over its unix socket, one
    request at a time (a fresh name per attempt), recording every attempt (monotonic start/end times,
    name, acknowledged or the error)."""

    def __init__(self, m: Member, tag: str | None = None, pause: float = 0.02, timeout: float = 3.0):
        super().__init__(daemon=True, name=f"writer-{m.name}")
        self.m = m
        self.tag = tag or m.name
        self.pause = pause
        self.timeout = timeout
        self.attempts: list[Attempt] = []
        self._stop_evt = threading.Event()

    def run(self) -> None:
        seq = 0
        while not self._stop_evt.is_set():
            name = f"w-{self.tag}-{seq}"
            seq += 1
            t0 = time.monotonic()
            try:
                r = self.m.request("POST", "/1.0/profiles", {"name": name, "description": "steady write",
                                                             "config": {}, "devices": {}}, timeout=self.timeout)
                ok, err = r.status in (200, 201), None if r.status in (200, 201) else f"{r.status} {r.body[:160]!r}"
            except Exception as e:   # connection refused, timeout...
                ok, err = False, repr(e)
            self.attempts.append(Attempt(t0, time.monotonic(), name, ok, err))
            self._stop_evt.wait(self.pause)

    def stop(self) -> "Writer":
        self._stop_evt.set()
        self.join(self.timeout + 5)
        return self

    @property
    def acked(self) -> list[str]:
        return [a.name for a in self.attempts if a.ok]

    def errors(self, since: float = 0.0, until: float = float("inf")) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok and a.start >= since and a.start <= until]

    def first_ok_started_after(self, t: float) -> Attempt | None:
        return next((a for a in self.attempts if a.ok and a.start >= t), None)
