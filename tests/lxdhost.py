"""A real LXD 5.0.2 host (Debian's `lxd`) built in a temporary directory, for the migrate-from-lxd tests.

`LxdHost.build()` makes: a dir pool `default` and a loop-backed btrfs pool `bt`, a managed bridge with a
unique name and a free subnet, profiles `default` and `extra`, a project `mgproj`, the busybox image
with an alias, and three containers: `crun` (running, on btrfs, a file written inside), `cstop`
(stopped, with snapshot `snap0`), `cvol` (running, a custom volume `vol1` on btrfs and a proxy
device). `record()` GETs every object through the API. `cleanup()` removes both daemons, containers,
dnsmasq, the bridge, mounts and loop devices, also after a failure half-way.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid

from helpers import VENV_BIN, busybox_tarball, free_port, kill_cgroup, unmount_under, wait_for

LXD = shutil.which("lxd")
CONTAINERS = ("crun", "cstop", "cvol")


def _sh(*args: str, check: bool = True, env=None, input: str | None = None, timeout: float = 180):
    r = subprocess.run(list(args), capture_output=True, text=True, env=env, input=input, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


class LxdHost:
    def __init__(self):
        from corral.network.host import host_routes_and_addresses
        from corral.network.subnets import pick_ipv4
        self.root = tempfile.mkdtemp(prefix="corral-mig-", dir="/var/tmp")
        os.chmod(self.root, 0o711)
        self.lxd_dir = os.path.join(self.root, "lxd")
        self.corral_dir = os.path.join(self.root, "corral")
        os.makedirs(self.lxd_dir, mode=0o711)
        self.env = dict(os.environ, LXD_DIR=self.lxd_dir)
        for k in ("LXD_SOCKET", "CORRAL_DIR", "CORRAL_SOCKET"):
            self.env.pop(k, None)
        self.corral_env = dict(self.env, LXD_DIR=self.corral_dir)
        self.bridge = "mg" + uuid.uuid4().hex[:8]
        self.subnet = pick_ipv4(host_routes_and_addresses())
        self.proxy_port = free_port()
        self.https_port = free_port()
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.extra: list[str] = []   # more containers a caller launched (bench/migrate.py)

    # ---- the LXD daemon ------------------------------------------------------------------
    def start_lxd(self) -> None:
        self._log = open(os.path.join(self.root, "lxd-test.log"), "ab")
        self.proc = subprocess.Popen([LXD, "--group", "root", "--logfile", os.path.join(self.root, "lxd.log")],
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _sh(LXD, "waitready", "--timeout", "120", env=self.env)

    def lxc(self, *args: str, check: bool = True, input: str | None = None, corral: bool = False):
        return _sh("lxc", *args, check=check, input=input, env=self.corral_env if corral else self.env)

    def query(self, path: str, corral: bool = False):
        return json.loads(self.lxc("query", path, corral=corral).stdout)

    def sql(self, scope: str, statement: str) -> str:
        return _sh(LXD, "sql", scope, statement, env=self.env).stdout

    def migrate(self, *extra: str, env: dict | None = None, timeout: float = 600):
        cmd = [os.path.join(VENV_BIN, "corral"), "migrate-from-lxd", "--lxd-dir", self.lxd_dir,
               "--corral-dir", self.corral_dir, *extra]
        e = dict(self.env, **(env or {}))
        e.pop("LXD_DIR", None)
        return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)

    # ---- the test host ----------------------------------------------------------------------
    def build(self) -> None:
        self.start_lxd()
        net = self.subnet
        preseed = f"""config: {{}}
networks:
- name: {self.bridge}
  type: bridge
  config:
    ipv4.address: {net}
    ipv4.nat: "false"
    ipv4.firewall: "false"
    ipv6.address: none
storage_pools:
- name: default
  driver: dir
- name: bt
  driver: btrfs
  config:
    size: 1GiB
profiles:
- name: default
  devices:
    root: {{path: /, pool: default, type: disk}}
    eth0: {{name: eth0, network: {self.bridge}, type: nic}}
- name: extra
  description: an extra profile
  config:
    user.purpose: migrate-test
    limits.processes: "200"
  devices: {{}}
projects:
- name: mgproj
  description: a project for the migration
  config:
    features.images: "false"
    features.profiles: "true"
    user.tag: mg
"""
        _sh(LXD, "init", "--preseed", env=self.env, input=preseed)
        self.lxc("image", "import", busybox_tarball(), "--alias", "busybox")
        self.lxc("image", "alias", "create", "bb-second", self.query("/1.0/images")[0].rsplit("/", 1)[1])
        self.lxc("launch", "busybox", "crun", "-p", "default", "-p", "extra", "-s", "bt")
        self.lxc("init", "busybox", "cstop")
        self.lxc("start", "cstop")
        self.wait_ip("cstop")
        self.lxc("exec", "cstop", "--", "sh", "-c", "echo before-snap > /root/marker")
        self.lxc("stop", "cstop")
        self.lxc("snapshot", "cstop", "snap0")
        self.lxc("storage", "volume", "create", "bt", "vol1", "size=64MiB")
        self.lxc("init", "busybox", "cvol")
        self.lxc("storage", "volume", "attach", "bt", "vol1", "cvol", "/mnt/vol1")
        self.lxc("config", "device", "add", "cvol", "web", "proxy",
                 f"listen=tcp:127.0.0.1:{self.proxy_port}", "connect=tcp:127.0.0.1:80")
        self.lxc("start", "cvol")
        for name in ("crun", "cvol"):
            self.wait_ip(name)
        self.lxc("exec", "crun", "--", "sh", "-c", "echo hello-from-lxd > /root/marker")
        self.lxc("exec", "cvol", "--", "sh", "-c", "echo on-the-volume > /mnt/vol1/data")
        self.lxc("profile", "create", "pp", "--project", "mgproj")
        # server config (global and member-local) and a trusted client certificate
        self.lxc("config", "set", "images.auto_update_interval", "0")
        self.lxc("config", "set", "core.https_address", f"127.0.0.1:{self.https_port}")
        crt = os.path.join(self.root, "client.crt")
        _sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1", "-nodes",
            "-keyout", os.path.join(self.root, "client.key"), "-out", crt, "-days", "30", "-subj", "/CN=mig-client")
        self.lxc("config", "trust", "add", crt, "--name", "mig-client")

    def wait_ip(self, name: str, corral: bool = False, timeout: float = 30) -> str:
        def ip():
            st = self.query(f"/1.0/instances/{name}/state", corral=corral)
            for a in ((st.get("network") or {}).get("eth0") or {}).get("addresses") or []:
                if a["family"] == "inet":
                    return a["address"]
            return None
        return wait_for(ip, timeout=timeout, interval=0.2)

    def record(self, corral: bool = False) -> dict:
        """GET of every object (recursion=1 lists, per project), as the API answers them."""
        q = lambda p: self.query(p, corral=corral)   # noqa: E731
        out = {"projects": q("/1.0/projects?recursion=1"), "networks": q("/1.0/networks?recursion=1"),
               "pools": q("/1.0/storage-pools?recursion=1"), "images": q("/1.0/images?recursion=1"),
               "aliases": q("/1.0/images/aliases?recursion=1"),
               "profiles": q("/1.0/profiles?recursion=1"),
               "project_profiles": q("/1.0/profiles?recursion=1&project=mgproj"),
               "instances": q("/1.0/instances?recursion=2"), "volumes": {}, "snapshots": {},
               "server": q("/1.0"), "certificates": q("/1.0/certificates?recursion=1")}
        for pool in out["pools"]:
            out["volumes"][pool["name"]] = q(f"/1.0/storage-pools/{pool['name']}/volumes?recursion=1")
        for inst in out["instances"]:
            out["snapshots"][inst["name"]] = q(f"/1.0/instances/{inst['name']}/snapshots?recursion=1")
        return out

    # ---- teardown ---------------------------------------------------------------------------
    def _stop_daemon(self, env: dict, sock: str, binary: str) -> None:
        if not os.path.exists(sock):
            return
        try:
            names = [u.rsplit("/", 1)[1].split("?")[0] for u in
                     json.loads(_sh("lxc", "query", "/1.0/instances?all-projects=true", env=env,
                                    timeout=20).stdout)]
            if names:
                _sh("lxc", "stop", "-f", *names, env=env, check=False, timeout=60)
            _sh(binary, "shutdown", "--timeout", "30", env=env, check=False, timeout=60)
        except (AssertionError, subprocess.TimeoutExpired, ValueError):
            pass

    def _drop_nft_chains(self) -> None:
        """Corrald's table for our bridge, and chains named after it in other tables (LXD's): never a table
        that is not ours."""
        r = _sh("nft", "-j", "list", "chains", check=False)
        try:
            chains = [c["chain"] for c in json.loads(r.stdout)["nftables"] if "chain" in c]
        except (ValueError, KeyError):
            return
        _sh("nft", "delete", "table", "inet", f"corral-{self.bridge}", check=False)   # corrald's, per bridge
        for c in chains:
            if self.bridge in c["name"]:
                _sh("nft", "flush", "chain", c["family"], c["table"], c["name"], check=False)
                _sh("nft", "delete", "chain", c["family"], c["table"], c["name"], check=False)
        # LXD's own table, once it holds no chain of anyone's (our LXD made it; another LXD's has chains)
        if not any(c["table"] == "lxd" and c["family"] == "inet" and self.bridge not in c["name"] for c in chains):
            _sh("nft", "delete", "table", "inet", "lxd", check=False)

    def cleanup(self) -> None:
        self._stop_daemon(self.env, os.path.join(self.lxd_dir, "unix.socket"), LXD)
        self._stop_daemon(self.corral_env, os.path.join(self.corral_dir, "unix.socket"),
                          os.path.join(VENV_BIN, "corrald"))
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        # whatever still runs from our dirs: corrald, dnsmasq, forkproxy, lxc monitors, payloads
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if self.root in cmd or self.bridge in cmd:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for name in CONTAINERS + tuple(self.extra):
            kill_cgroup(f"lxc.payload.{name}")
        time.sleep(0.3)
        _sh("ip", "link", "del", self.bridge, check=False)
        self._drop_nft_chains()
        for d in (self.corral_dir, self.lxd_dir, self.root):
            unmount_under(d)
        for img in glob.glob(os.path.join(self.root, "**", "*.img"), recursive=True):
            for line in _sh("losetup", "-j", img, check=False).stdout.splitlines():
                _sh("losetup", "-d", line.split(":", 1)[0], check=False)
        if self._log:
            self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _checksum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


class Pinger(threading.Thread):
    """ICMP echo to an address every 50 ms from the host (a raw socket: this machine has no `ping`):
    the longest gap between two replies is the downtime."""

    def __init__(self, address: str):
        super().__init__(daemon=True)
        self.address, self.replies, self.done = address, [], threading.Event()

    def run(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        s.settimeout(0.2)
        ident, seq = os.getpid() & 0xFFFF, 0
        try:
            while not self.done.is_set():
                seq = (seq + 1) & 0xFFFF
                hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"corral"
                s.sendto(struct.pack("!BBHHH", 8, 0, _checksum(hdr), ident, seq) + b"corral", (self.address, 0))
                end = time.monotonic() + 0.2
                while time.monotonic() < end:
                    try:
                        pkt, src = s.recvfrom(1024)
                    except (TimeoutError, OSError):
                        break
                    ihl = (pkt[0] & 0x0F) * 4
                    typ, _, _, rid, rseq = struct.unpack("!BBHHH", pkt[ihl:ihl + 8])
                    if src[0] == self.address and typ == 0 and rid == ident and rseq == seq:
                        self.replies.append(time.monotonic())
                        break
                time.sleep(0.05)
        finally:
            s.close()

    def downtime(self) -> float:
        return max((b - a for a, b in zip(self.replies, self.replies[1:])), default=float("inf"))
