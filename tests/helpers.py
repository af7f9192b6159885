"""Test helpers: run a real corrald in a private CORRAL_DIR and talk to it over its unix socket."""
from __future__ import annotations

import contextlib

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
SAMPLES = os.path.join(os.path.dirname(ROOT), "shared", "lxd-api-samples")


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path_)


class Response:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def metadata(self):
        return self.json["metadata"]


class Corrald:
    """A real corrald process in a temporary CORRAL_DIR."""

    def __init__(self, debug: bool = False):
        # Unprivileged container roots must traverse the state dir: keep the chain 0711.
        self.dir = tempfile.mkdtemp(prefix="corral-test-", dir="/var/tmp")
        os.chmod(self.dir, 0o711)
        self.socket = os.path.join(self.dir, "unix.socket")
        self.env = dict(os.environ, CORRAL_DIR=self.dir, LXD_SOCKET=self.socket)
        self.env.pop("CORRAL_SOCKET", None)
        self.proc: subprocess.Popen | None = None
        self.debug = debug
        self.wrapper: list[str] = []   # a command corrald runs under (e.g. prlimit); it must exec corrald

    def start(self, timeout: float = 30) -> "Corrald":
        args = self.wrapper + [os.path.join(VENV_BIN, "corrald")] + (["--debug"] if self.debug else ["--verbose"])
        self.log = open(os.path.join(self.dir, "test-corrald.log"), "ab")
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.run("corrald", "waitready", "--timeout", str(int(timeout)), check=True, timeout=timeout + 30)
        return self

    def run(self, *args: str, check: bool = False, input: str | None = None, timeout: float = 120):
        cmd = list(args)
        if cmd[0] in ("corrald", "corral"):
            cmd[0] = os.path.join(VENV_BIN, cmd[0])
        res = subprocess.run(cmd, env=self.env, capture_output=True, text=True, input=input, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def lxc(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120):
        return self.run("lxc", *args, check=check, input=input, timeout=timeout)

    def request(self, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None,
                timeout: float = 60) -> Response:
        conn = UnixConn(self.socket, timeout=timeout)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers=headers or {})
        r = conn.getresponse()
        out = Response(r.status, r.headers, r.read())
        conn.close()
        return out

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def wait_op(self, resp: Response, timeout: float = 120) -> dict:
        op = resp.json["operation"]
        return self.get(f"{op}/wait?timeout={timeout}", timeout=timeout + 5).metadata

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.run("corrald", "shutdown", "--timeout", str(int(timeout)), timeout=timeout + 30)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        return rc

    def cleanup(self) -> None:
        """Stop the daemon and every container it made (containers outlive the daemon)."""
        if self.proc is not None and self.proc.poll() is None:
            try:   # through the daemon first: it reaches containers in any network namespace
                names = [u.rsplit("/", 1)[1].split("?")[0] for u in self.get("/1.0/instances?all-projects=true",
                                                                           timeout=10).metadata]
                if names:
                    self.lxc("delete", "-f", *names, check=False, timeout=120)
            except Exception:
                pass
        self.stop()
        lxcpath = os.path.join(self.dir, "containers")
        if os.path.isdir(lxcpath):
            import lxc
            for name in lxc.list_containers(config_path=lxcpath):
                c = lxc.Container(name, config_path=lxcpath)
                if c.running:
                    c.stop()
                    c.wait("STOPPED", 10)
                kill_cgroup(f"lxc.payload.{name}")   # a container whose monitor we cannot reach
        kill_vms(self.dir)   # QEMU outlives the daemon too
        from corral.network.cleanup import remove_networks
        remove_networks(self.dir)   # bridges, nft tables and dnsmasq outlive the daemon too
        unmount_under(self.dir)   # storage pools on loop files (btrfs) stay mounted after a stop
        shutil.rmtree(self.dir, ignore_errors=True)


def kill_vms(corral_dir: str) -> None:
    """Kill the QEMU of every VM of a daemon's dir (its logs/<name>/qemu.pid) and remove its runtime dir."""
    import glob
    import signal
    from corral.instance.drivers.qemu import rundir_for
    for pidfile in glob.glob(os.path.join(corral_dir, "logs", "*", "qemu.pid")):
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
            if os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("qemu-system"):
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        shutil.rmtree(rundir_for(os.path.dirname(pidfile)), ignore_errors=True)


def unmount_under(path: str) -> None:
    """Unmount every mount at or below `path`, deepest first (loop devices are freed with them)."""
    path = os.path.realpath(path)
    targets = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            t = line.split()[4].replace("\\040", " ")
            if t == path or t.startswith(path + "/"):
                targets.append(t)
    for t in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", t], capture_output=True)


def kill_cgroup(name: str) -> None:
    """SIGKILL every process in the v1 cgroups called `name` (a container's payload)."""
    import glob
    for procs in glob.glob(f"/sys/fs/cgroup/*/{name}/cgroup.procs"):
        try:
            with open(procs) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


_IMAGE_CACHE: dict[str, str] = {}


def busybox_tarball() -> str:
    """A busybox image tarball made by the tests themselves (built once per test run)."""
    if "path" not in _IMAGE_CACHE:
        from corral.cli.busybox import build_busybox_image
        d = tempfile.mkdtemp(prefix="corral-test-image-")
        _IMAGE_CACHE["path"] = build_busybox_image(d)
    return _IMAGE_CACHE["path"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout: float = 10, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def sample(name: str):
    with open(os.path.join(SAMPLES, name)) as f:
        return json.load(f)


@contextlib.contextmanager
def initialised_corrald(env: dict | None = None):
    """A real corrald after `init --auto` (dir pool `default`) with the busybox image as `busybox`;
    it and every container it made are removed afterwards, also when the test fails. `env`: more
    environment for the daemon."""
    d = Corrald()
    d.env.update(env or {})
    try:
        d.start()
        d.run("corrald", "init", "--auto", check=True)
        d.lxc("image", "import", busybox_tarball(), "--alias", "busybox")
        yield d
    finally:
        d.cleanup()


def import_image(d: Corrald, files: list[str], alias: str, public: bool = True) -> str:
    """`lxc image import FILES [--public]` on `d`, with `alias` pointed at the new image (created, or moved
    from the image it named). Its fingerprint."""
    out = d.lxc("image", "import", *files, *(["--public"] if public else [])).stdout
    fp = out.strip().split()[-1]
    assert len(fp) == 64, out
    if d.get(f"/1.0/images/aliases/{alias}").status == 200:
        r = d.request("PUT", f"/1.0/images/aliases/{alias}", {"target": fp, "description": ""})
    else:
        r = d.request("POST", "/1.0/images/aliases", {"name": alias, "target": fp})
    assert r.status in (200, 201), r.body
    return fp


def images_by_fingerprint(d: Corrald) -> dict[str, dict]:
    return {i["fingerprint"]: i for i in d.get("/1.0/images?recursion=1").metadata}
