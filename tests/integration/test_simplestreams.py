"""Simplestreams between two corralds and from static trees (issue 15, acceptance 4 and 5), with the
real `lxc` client.

`src` serves its public images on its HTTPS listener (/streams/v1/...); `host` adds it as a
simplestreams remote and as an LXD remote, lists, copies and launches its images, and follows a
rebuilt image (same alias, new fingerprint) by `lxc image refresh` and by the auto-update task. A
tree written by `corral-builder publish` works as a remote served by `python3 -m http.server` (corrald
pulls over plain http, as LXD's daemon does) and, for lxc (which accepts only https:// for
simplestreams remotes), by http.server wrapped in TLS (tests/tlsfileserver.py). A 100 MB image copy
shows progress; killing the source in the middle leaves no partial image behind.

lxc pins a simplestreams remote's self-signed certificate from $LXD_CONF/servercerts/<remote>.crt
(`lxc remote add --protocol simplestreams` itself never fetches one): the fixtures put it there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import streamsimg
from helpers import VENV_BIN, Corrald, free_port, images_by_fingerprint, import_image, initialised_corrald, unique, wait_for

pytestmark = pytest.mark.integration
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Lxc:
    def __init__(self, local: Corrald):
        self.home = tempfile.mkdtemp(prefix="corral-lxc-ss-")
        self.conf = os.path.join(self.home, "lxc")
        os.makedirs(os.path.join(self.conf, "servercerts"))
        self.env = dict(local.env, HOME=self.home, LXD_CONF=self.conf)

    def __call__(self, *args: str, check: bool = True, timeout: float = 300):
        res = subprocess.run(["lxc", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"lxc {args} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def add_streams(self, name: str, url: str, cert_pem: str) -> None:
        self("remote", "add", name, url, "--protocol", "simplestreams")
        with open(os.path.join(self.conf, "servercerts", f"{name}.crt"), "w") as f:
            f.write(cert_pem)


@pytest.fixture(scope="module")
def src():
    with initialised_corrald() as d:
        yield d


@pytest.fixture(scope="module")
def net(host, src):
    ports = {}
    for name, d in (("host", host), ("src", src)):
        ports[name] = free_port()
        r = d.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{ports[name]}"}})
        assert r.status == 200, r.body
    lxc = Lxc(host)
    cert = src.get("/1.0").metadata["environment"]["certificate"]
    server = f"https://127.0.0.1:{ports['src']}"
    lxc.add_streams("ss", server, cert)
    token = src.lxc("config", "trust", "add", "--name", unique("ss")).stdout.strip().splitlines()[-1].strip()
    lxc("remote", "add", "lx", token)
    try:
        yield {"lxc": lxc, "server": server, "cert": cert}
    finally:
        shutil.rmtree(lxc.home, ignore_errors=True)


@pytest.fixture()
def made(host, src):
    out = {"instances": [], "host": set(), "src": set(), "dirs": [], "procs": []}
    yield out
    for p in out["procs"]:
        if p.poll() is None:
            p.kill()
        p.wait()
    for name in out["instances"]:
        host.lxc("delete", "-f", name, check=False)
    for d, key in ((host, "host"), (src, "src")):
        for fp in out[key]:
            if d.get(f"/1.0/images/{fp}").status == 200:
                d.wait_op(d.request("DELETE", f"/1.0/images/{fp}"))
    for p in out["dirs"]:
        shutil.rmtree(p, ignore_errors=True)


def workdir(made) -> str:
    d = tempfile.mkdtemp(prefix="corral-test-ss-", dir="/var/tmp")
    made["dirs"].append(d)
    return d


def publish(src: Corrald, made, alias: str, kind: str = "unified", payload_mib: int = 0) -> str:
    """A fresh busybox image (unified, or split with a squashfs rootfs) imported public on `src`,
    `alias` pointed at it. Its fingerprint."""
    d = workdir(made)
    if kind == "unified":
        files = [streamsimg.unified(d, unique("rev"), payload_mib)]
    else:
        files = list(streamsimg.split(d, unique("rev"), payload_mib))
    fp = import_image(src, files, alias)
    made["src"].add(fp)
    return fp


images = images_by_fingerprint


def leftovers(d: Corrald) -> tuple:
    """What an image download may leave: image records, image store files (build dirs included),
    the default pool's image volumes."""
    pool = os.path.join(d.dir, "storage-pools", "default", "images")
    return (set(images(d)), set(os.listdir(os.path.join(d.dir, "images"))),
            set(os.listdir(pool)) if os.path.isdir(pool) else set())


def run_task(d: Corrald, task: str, hour: int = 0) -> dict:
    r = d.request("POST", "/internal/testing/image-tasks", {"task": task, "hour": hour})
    assert r.status == 202, r.body
    op = d.wait_op(r)
    assert op["status"] == "Success", op
    return op["metadata"]


def set_config(d: Corrald, key: str, value: str) -> None:
    r = d.request("PATCH", "/1.0", {"config": {key: value}})
    assert r.status == 200, r.body


# ---- corrald serving simplestreams ---------------------------------------------------------------

def test_streams_documents_list_public_images_only(src, net, made):
    alias, hidden = unique("pub"), unique("priv")
    fp = publish(src, made, alias, "split")
    d = workdir(made)
    priv = src.lxc("image", "import", streamsimg.unified(d, unique("priv"))).stdout.strip().split()[-1]
    made["src"].add(priv)
    src.request("POST", "/1.0/images/aliases", {"name": hidden, "target": priv})
    out = net["lxc"]("image", "list", "ss:", "--format", "json").stdout
    assert fp in out and alias in out and priv not in out and hidden not in out
    index = src.get("/streams/v1/index.json").json
    assert index["index"]["images"]["datatype"] == "image-downloads"
    assert any(p.endswith(fp[:12]) for p in index["index"]["images"]["products"])
    r = src.get(f"/streams/v1/images/{priv}/{priv}.tar")
    assert r.status == 404


def test_list_copy_and_launch_over_simplestreams(host, src, net, made):
    lxc = net["lxc"]
    a_unified, a_split = unique("u"), unique("s")
    fp_u = publish(src, made, a_unified)
    fp_s = publish(src, made, a_split, "split")
    listing = lxc("image", "list", "ss:").stdout
    assert fp_u[:12] in listing and fp_s[:12] in listing
    local = unique("loc")
    lxc("image", "copy", f"ss:{a_unified}", "local:", "--alias", local, "--auto-update")
    made["host"].add(fp_u)
    img = images(host)[fp_u]
    assert img["auto_update"] is True and img["cached"] is False
    assert img["update_source"]["protocol"] == "simplestreams" and img["update_source"]["alias"] == a_unified
    assert img["update_source"]["server"] == net["server"]
    assert host.get(f"/1.0/images/aliases/{local}").metadata["target"] == fp_u
    c1 = unique("ss")
    made["instances"].append(c1)
    lxc("launch", f"ss:{a_split}", c1)
    made["host"].add(fp_s)
    inst = host.get(f"/1.0/instances/{c1}").metadata
    assert inst["status"] == "Running" and inst["config"]["volatile.base_image"] == fp_s
    assert images(host)[fp_s]["cached"] is True
    assert lxc("exec", c1, "--", "cat", "/etc/hostname").stdout.strip() == c1


def test_list_copy_and_launch_over_the_lxd_protocol(host, src, net, made):
    lxc, alias = net["lxc"], unique("lx")
    fp = publish(src, made, alias, "split")
    assert fp[:12] in lxc("image", "list", "lx:").stdout
    c = unique("lx")
    made["instances"].append(c)
    lxc("launch", f"lx:{alias}", c)
    made["host"].add(fp)
    assert host.get(f"/1.0/instances/{c}").metadata["status"] == "Running"
    assert images(host)[fp]["update_source"]["protocol"] == "lxd"


@pytest.mark.parametrize("remote,protocol", [("ss", "simplestreams"), ("lx", "lxd")])
@pytest.mark.parametrize("kind", ["unified", "split"])
def test_rebuilt_image_is_picked_up_by_refresh_and_by_auto_update(host, src, net, made, kind, remote, protocol):
    lxc, alias, local = net["lxc"], unique("rb"), unique("loc")
    old = publish(src, made, alias, kind)
    lxc("image", "copy", f"{remote}:{alias}", "local:", "--alias", local, "--auto-update")
    made["host"].add(old)
    assert "Image already up to date." in lxc("image", "refresh", local).stdout
    new = publish(src, made, alias, kind)           # rebuilt on src: same alias, new fingerprint
    made["host"].add(new)
    assert "Image refreshed successfully!" in lxc("image", "refresh", local).stdout
    assert host.get(f"/1.0/images/aliases/{local}").metadata["target"] == new
    now = images(host)
    assert old not in now and now[new]["auto_update"] is True
    assert now[new]["update_source"]["protocol"] == protocol
    # The auto-update task (images.auto_update_interval hours; triggered here at a due hour).
    newer = publish(src, made, alias, kind)
    made["host"].add(newer)
    try:
        set_config(host, "images.auto_update_interval", "2")
        assert new not in run_task(host, "auto-update", hour=1)["refreshed"]    # not due
        assert new in run_task(host, "auto-update", hour=2)["refreshed"]
    finally:
        set_config(host, "images.auto_update_interval", "")
    assert host.get(f"/1.0/images/aliases/{local}").metadata["target"] == newer
    assert new not in images(host)


# ---- static trees -------------------------------------------------------------------------------

def _tree(made, alias: str, payload_mib: int = 0, kind: str = "unified") -> tuple[str, str]:
    d = workdir(made)
    if kind == "unified":
        arg = streamsimg.unified(os.path.join(d, "img"), unique("tree"), payload_mib)
    else:
        arg = ",".join(streamsimg.split(os.path.join(d, "img"), unique("tree"), payload_mib))
    root = os.path.join(d, "tree")
    # the installed entry point, as a user runs it
    res = subprocess.run([os.path.join(VENV_BIN, "corral-builder"), "publish", root, arg, "--alias", alias],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return root, res.stdout.split(": ", 1)[1].split()[0]


def _serve_plain(made, root: str) -> str:
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", root,
                          str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    made["procs"].append(p)
    _wait_port(port)
    return f"http://127.0.0.1:{port}"


def _serve_tls(made, root: str, rate: int = 0) -> tuple[str, str, subprocess.Popen]:
    d = workdir(made)
    key, crt = os.path.join(d, "t.key"), os.path.join(d, "t.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-days", "2", "-keyout", key, "-out", crt], check=True, capture_output=True)
    port = free_port()
    p = subprocess.Popen([sys.executable, os.path.join(TESTS, "tlsfileserver.py"), "--port", str(port),
                          "--dir", root, "--cert", crt, "--key", key, "--rate", str(rate)])
    made["procs"].append(p)
    _wait_port(port)
    return f"https://127.0.0.1:{port}", open(crt).read(), p


def _wait_port(port: int) -> None:
    import socket

    def up():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_for(up, timeout=20)


def _copy_in_background(lxc, made, source: str) -> subprocess.Popen:
    """`lxc image copy SOURCE local:` started, its output kept; stopped at cleanup if still running."""
    copy = subprocess.Popen(["lxc", "image", "copy", source, "local:"], env=lxc.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    made["procs"].append(copy)
    return copy


def _download_progress(host: Corrald) -> str | None:
    """The download_progress of a running operation on `host` short of 100%, or None."""
    for op in host.get("/1.0/operations?recursion=1").metadata.get("running") or []:
        prog = (op.get("metadata") or {}).get("download_progress") or ""
        if prog and not prog.startswith("100%"):
            return prog
    return None


def test_static_tree_served_by_python_http_server(host, made):
    alias = unique("st")
    root, fp = _tree(made, alias, kind="split")
    url = _serve_plain(made, root)
    r = host.request("POST", "/1.0/images", {"source": {"type": "image", "mode": "pull", "protocol": "simplestreams",
                                                        "server": url, "alias": alias}, "auto_update": True})
    assert r.status == 202, r.body
    op = host.wait_op(r)
    assert op["status"] == "Success", op
    made["host"].add(fp)
    img = images(host)[fp]
    assert img["update_source"] == {"server": url, "protocol": "simplestreams", "alias": alias,
                                    "certificate": "", "image_type": ""}
    assert img["properties"]["os"] == "busybox"


def test_static_tree_as_an_lxc_remote(host, net, made):
    lxc, alias = net["lxc"], unique("st")
    root, fp = _tree(made, alias)
    url, cert, _ = _serve_tls(made, root)
    name = unique("tr")
    lxc.add_streams(name, url, cert)
    try:
        assert fp[:12] in lxc("image", "list", f"{name}:").stdout
        c = unique("st")
        made["instances"].append(c)
        lxc("launch", f"{name}:{alias}", c)
        made["host"].add(fp)
        assert host.get(f"/1.0/instances/{c}").metadata["status"] == "Running"
        assert images(host)[fp]["update_source"]["certificate"].strip() == cert.strip()
    finally:
        lxc("remote", "remove", name, check=False)


# ---- a large copy: progress, and the source killed in the middle ------------------------------------

def test_100mb_copy_shows_progress(host, src, net, made):
    lxc, alias = net["lxc"], unique("big")
    fp = publish(src, made, alias, "unified", payload_mib=100)
    res = lxc("image", "copy", f"ss:{alias}", "local:")
    made["host"].add(fp)
    lines = [x.strip() for x in res.stdout.replace("\r", "\n").splitlines() if "Copying the image:" in x]
    assert lines and all("%" in x and "/s)" in x for x in lines), res.stdout
    assert images(host)[fp]["size"] > 100 << 20


def test_source_killed_mid_transfer_leaves_no_partial_image(host, net, made):
    lxc, alias = net["lxc"], unique("kill")
    root, fp = _tree(made, alias, payload_mib=100, kind="split")
    url, cert, server = _serve_tls(made, root, rate=10 << 20)        # ~10 s for the image
    name = unique("tr")
    lxc.add_streams(name, url, cert)
    before = leftovers(host)
    try:
        copy = _copy_in_background(lxc, made, f"{name}:{alias}")
        seen = wait_for(lambda: _download_progress(host), timeout=60, interval=0.1)
        assert "%" in seen
        server.kill()
        out, err = copy.communicate(timeout=120)
        assert copy.returncode != 0
        assert "interrupted" in err or "cut short" in err, err
        # No record, no file, no build directory, no pool volume: as before.
        wait_for(lambda: leftovers(host) == before, timeout=30)
        assert fp not in images(host)
    finally:
        lxc("remote", "remove", name, check=False)


class _SlowProxy:
    """A TCP relay on 127.0.0.1 sending the upstream's answers at most `rate` bytes a second (TLS
    passes through untouched), so that a test can kill the server behind it mid-transfer."""

    def __init__(self, upstream_port: int, rate: int):
        import socket
        import threading
        self.rate, self.up = rate, upstream_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns: list = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        import socket
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.up))
            self.conns += [c, u]
            for a, b, slow in ((c, u, False), (u, c, True)):
                threading.Thread(target=self._pipe, args=(a, b, slow), daemon=True).start()

    def _pipe(self, a, b, slow: bool) -> None:
        import socket
        import time as _time
        try:
            while data := a.recv(1 << 16):
                b.sendall(data)
                if slow:
                    _time.sleep(len(data) / self.rate)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        for s in self.conns:
            s.close()


def test_corrald_source_killed_mid_transfer_over_the_lxd_protocol(host, net, made, fresh_host):
    """The same over the LXD protocol, the source a corrald of its own killed with SIGKILL while
    `lxc image copy` is at a few per cent (a relay slows its answers down)."""
    lxc, alias, victim = net["lxc"], unique("kill"), fresh_host
    port = free_port()
    r = victim.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{port}"}})
    assert r.status == 200, r.body
    fp = publish(victim, made, alias, "split", payload_mib=100)
    made["src"].discard(fp)   # goes with its daemon
    proxy = _SlowProxy(port, 10 << 20)
    name = unique("kp")
    before = leftovers(host)
    try:
        lxc("remote", "add", name, f"https://127.0.0.1:{proxy.port}", "--accept-certificate", "--public")
        copy = _copy_in_background(lxc, made, f"{name}:{alias}")
        assert "%" in wait_for(lambda: _download_progress(host), timeout=60, interval=0.1)
        victim.kill9()
        _, err = copy.communicate(timeout=120)
        assert copy.returncode != 0 and "interrupted" in err, err
        wait_for(lambda: leftovers(host) == before, timeout=30)
        assert fp not in images(host)
    finally:
        proxy.close()
        lxc("remote", "remove", name, check=False)
