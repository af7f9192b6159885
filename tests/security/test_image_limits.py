"""Finding 9: unbounded images. A small compressed archive that unpacks to gigabytes is refused as
soon as it would pass images.max_unpacked_size (or the target pool's free space minus a margin),
within a second, with nothing left behind (staging dirs, the upload, DB rows); a gzip without its
trailer or a tar without its end blocks is refused too. Unified and split images, every compression,
squashfs rootfs; uploads through the unix socket (lxc image import and raw POSTs)."""
import os
import shutil
import subprocess
import tarfile
import threading
import time

import pytest

import imagegen
from helpers import unique

MIB = 1 << 20
LIMIT = 200 * MIB
HAVE_SQUASHFS = shutil.which("mksquashfs") is not None and shutil.which("unsquashfs") is not None


@pytest.fixture(scope="module")
def limited(host):
    """The shared host with images.max_unpacked_size=200MiB (unset again afterwards)."""
    host.lxc("config", "set", "images.max_unpacked_size", "200MiB")
    try:
        yield host
    finally:
        host.lxc("config", "unset", "images.max_unpacked_size", check=False)


def snapshot(d) -> dict:
    """Everything an import could leave behind: files under images/ and the pool's images/ (and
    the build/staging dirs there), and the image rows."""
    out = {}
    for sub in ("images", os.path.join("storage-pools", "default", "images")):
        base = os.path.join(d.dir, sub)
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            for n in dirnames + filenames:
                found.append(os.path.relpath(os.path.join(dirpath, n), base))
        out[sub] = sorted(found)
    r = d.get("/1.0/images?recursion=1")
    assert r.status == 200
    out["rows"] = sorted(i["fingerprint"] for i in r.metadata)
    out["aliases"] = sorted(a["name"] for a in d.get("/1.0/images/aliases?recursion=1").metadata)
    return out


class StagingWatcher:
    """Polls the pool's images/ dir every few ms, summing the sizes of files in staging dirs (names
    beginning with ".", or new image volumes ending with ".partial"): when the unpacked bytes were last seen growing, independently of the server."""

    def __init__(self, d):
        self.base = os.path.join(d.dir, "storage-pools", "default", "images")
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        total = 0
        try:
            # staging dirs, also inside a new image volume (`<fingerprint>.partial`, storage/drivers/base.py)
            tops = [e.path for e in os.scandir(self.base) if e.name.startswith(".") or e.name.endswith(".partial")]
        except FileNotFoundError:
            return 0
        for top in tops:
            for dirpath, _, filenames in os.walk(top):
                for n in filenames:
                    try:
                        total += os.lstat(os.path.join(dirpath, n)).st_size
                    except FileNotFoundError:
                        pass
        return total

    def _run(self):
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), self._size()))
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def last_growth(self, at_least: int) -> float:
        """The time of the largest sample, which must show at least `at_least` bytes unpacked."""
        t, size = max(self.samples, key=lambda s: (s[1], s[0]))
        assert size >= at_least, f"the unpacking never got near the limit (max {size} bytes seen)"
        return t


def assert_refused_fast(d, cmd_or_request, watcher_min: int = LIMIT * 3 // 4):
    before = snapshot(d)
    with StagingWatcher(d) as w:
        start = time.monotonic()
        res = cmd_or_request()
        refused = time.monotonic()
    gap = refused - w.last_growth(watcher_min)
    after = snapshot(d)
    assert after == before, "the refused image left something behind"
    return res, gap, refused - start


# ---- the zip bomb, unified, by lxc image import ---------------------------------------------------

def test_gzip_bomb_refused_within_a_second(limited, tmp_path):
    d = limited
    bomb = imagegen.write(tmp_path / "bomb.tar.gz", imagegen.zero_bomb(3 << 30, 16 * MIB))
    size = os.path.getsize(bomb)
    assert size < 4 * MIB   # a few MB of gzip expanding to 3 GiB
    alias = unique("bomb")
    res, gap, total = assert_refused_fast(
        d, lambda: d.lxc("image", "import", str(bomb), "--alias", alias, check=False, timeout=120))
    assert res.returncode != 0
    assert "images.max_unpacked_size" in res.stderr and "200.00MiB" in res.stderr, res.stderr
    print(f"\ngzip bomb {size} bytes -> 3 GiB, limit 200MiB: refused {gap:.3f}s after the last unpack "
          f"progress seen ({total:.2f}s in all)")
    assert gap < 1.0


def test_split_gzip_bomb_refused(limited, tmp_path):
    d = limited
    meta = imagegen.write(tmp_path / "meta.tar.gz", [*imagegen.entry(
        imagegen.info("metadata.yaml", size=len(imagegen.METADATA)), imagegen.METADATA), *imagegen.end_blocks()])
    rootfs = imagegen.write(tmp_path / "rootfs.tar.gz", imagegen.zero_bomb(3 << 30, 16 * MIB, split_rootfs=True))
    res, gap, _ = assert_refused_fast(
        d, lambda: d.lxc("image", "import", str(meta), str(rootfs), check=False, timeout=120))
    assert res.returncode != 0 and "images.max_unpacked_size" in res.stderr, res.stderr
    assert gap < 1.0


def _post(d, data: bytes):
    return d.request("POST", "/1.0/images", raw=data, headers={"Content-Type": "application/octet-stream"},
                     timeout=120)


def _refusal(d, r) -> tuple[int, str]:
    """(status, error) of a refused upload: sync 400, or the import operation's failure."""
    if r.status == 202:
        op = d.wait_op(r)
        assert op["status"] == "Failure", op
        return op["status_code"], op["err"]
    return r.status, r.json.get("error", "")


@pytest.mark.parametrize("comp", ["xz", "bz2", "zst", "none"])
def test_other_compressions_bounded(limited, tmp_path, comp):
    """Smaller bombs (300 MiB of zeros) with every other compression: refused, nothing left.
    An uncompressed tarball over the limit is refused while it is being uploaded already."""
    d = limited
    path = imagegen.write(tmp_path / f"bomb.{comp}", imagegen.zero_bomb(300 * MIB, 16 * MIB), comp)
    data = path.read_bytes()
    before = snapshot(d)
    status, err = _refusal(d, _post(d, data))
    assert status == 400
    assert "images.max_unpacked_size" in err, err
    assert snapshot(d) == before


@pytest.mark.skipif(not HAVE_SQUASHFS, reason="squashfs-tools not installed")
def test_squashfs_rootfs_measured_before_unpacking(limited, tmp_path):
    """A squashfs rootfs holding a 3 GiB (sparse) file: refused from its listing, before unsquashfs
    writes anything."""
    d = limited
    src = tmp_path / "sq"
    src.mkdir()
    with open(src / "big", "wb") as f:
        f.truncate(3 << 30)
    sq = tmp_path / "rootfs.squashfs"
    subprocess.run(["mksquashfs", str(src), str(sq), "-quiet", "-no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    meta = imagegen.write(tmp_path / "meta.tar.gz", [*imagegen.entry(
        imagegen.info("metadata.yaml", size=len(imagegen.METADATA)), imagegen.METADATA), *imagegen.end_blocks()])
    before = snapshot(d)
    start = time.monotonic()
    res = d.lxc("image", "import", str(meta), str(sq), check=False, timeout=120)
    took = time.monotonic() - start
    assert res.returncode != 0 and "images.max_unpacked_size" in res.stderr, res.stderr
    assert took < 10
    assert snapshot(d) == before


# ---- truncated archives -------------------------------------------------------------------------

def _small_image(end: bool = True) -> bytes:
    return imagegen.flat([*imagegen.image_head(),
                          *imagegen.entry(imagegen.info("rootfs/file", size=5000), os.urandom(5000)),
                          *(imagegen.end_blocks() if end else [])])


@pytest.mark.parametrize("case", ["gzip-no-trailer", "gzip-half", "xz-truncated", "bz2-truncated",
                                  "tar-no-end-blocks", "gzip-tar-no-end-blocks"])
def test_truncated_archives_refused(limited, case):
    d = limited
    if case == "gzip-no-trailer":
        data = imagegen.compress_bytes(_small_image(), "gz")[:-8]
    elif case == "gzip-half":
        data = imagegen.compress_bytes(_small_image(), "gz")
        data = data[: len(data) // 2]
    elif case == "xz-truncated":
        data = imagegen.compress_bytes(_small_image(), "xz")[:-12]
    elif case == "bz2-truncated":
        data = imagegen.compress_bytes(_small_image(), "bz2")[:-4]
    elif case == "tar-no-end-blocks":
        data = _small_image(end=False)
    else:
        data = imagegen.compress_bytes(_small_image(end=False), "gz")
    before = snapshot(d)
    status, err = _refusal(d, _post(d, data))
    assert status == 400, err
    assert "Invalid image tarball" in err, err
    assert snapshot(d) == before
    # the same image, complete, is accepted (the refusal was for the truncation)
    good = imagegen.compress_bytes(_small_image(), "gz" if "gz" in case else "none")
    r = _post(d, good)
    assert r.status == 202, r.body
    op = d.wait_op(r)
    assert op["status"] == "Success", op
    fp = op["metadata"]["fingerprint"]
    assert d.wait_op(d.request("DELETE", f"/1.0/images/{fp}"))["status"] == "Success"


def test_limit_key_validated(host):
    was = host.get("/1.0").metadata["config"].get("images.max_unpacked_size")
    try:
        for bad in ("lots", "-1", "0", "150%", "10XB"):
            res = host.lxc("config", "set", f"images.max_unpacked_size={bad}", check=False)
            assert res.returncode != 0 and "images.max_unpacked_size" in res.stderr, (bad, res.stderr)
            assert host.get("/1.0").metadata["config"].get("images.max_unpacked_size") == was
        for good in ("10GiB", "512MB", "30%", "1073741824"):
            host.lxc("config", "set", "images.max_unpacked_size", good)
            assert host.get("/1.0").metadata["config"]["images.max_unpacked_size"] == good
    finally:
        if was:
            host.lxc("config", "set", "images.max_unpacked_size", was)
        else:
            host.lxc("config", "unset", "images.max_unpacked_size")


def test_image_within_limit_accepted(limited, tmp_path):
    """Not a limit on everything: 100 MiB of zeros passes the 200MiB limit and can be used."""
    d = limited
    path = imagegen.write(tmp_path / "ok.tar.gz", imagegen.zero_bomb(100 * MIB, 16 * MIB))
    alias = unique("big")
    d.lxc("image", "import", str(path), "--alias", alias, timeout=120)
    try:
        info = d.get(f"/1.0/images/aliases/{alias}").metadata
        assert d.get(f"/1.0/images/{info['target']}").status == 200
    finally:
        d.lxc("image", "delete", alias, check=False)


# ---- the default: the pool's free space ---------------------------------------------------------

def test_free_space_of_small_btrfs_pool(daemon, tmp_path):
    """No images.max_unpacked_size set (default 25% of the disk, far more than the pool): the
    `default` pool is a 300MiB loop-file btrfs, and the bomb is refused at its free space minus
    the margin, naming the pool."""
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("btrfs-progs not installed")
    d = daemon
    r = d.request("POST", "/1.0/storage-pools", {"name": "default", "driver": "btrfs", "config": {"size": "300MiB"}})
    assert r.status in (200, 201), r.body
    try:
        bomb = imagegen.write(tmp_path / "bomb.tar.gz", imagegen.zero_bomb(3 << 30, 16 * MIB))
        before = snapshot(d)
        res = d.lxc("image", "import", str(bomb), check=False, timeout=120)
        assert res.returncode != 0
        assert 'free space of storage pool "default"' in res.stderr, res.stderr
        assert snapshot(d) == before
        pool = os.path.join(d.dir, "storage-pools", "default", "images")
        assert [e for e in os.listdir(pool) if e.endswith(".partial")] == []
    finally:
        r = d.request("DELETE", "/1.0/storage-pools/default")
        assert r.status == 200, r.body


# ---- images pulled from another server (corral/image/remote.py) ----------------------------------

class FakeImageServer:
    """A minimal LXD-protocol HTTPS image server on loopback serving one image: its info and its
    export, streamed from `chunks()` (a fresh iterator of bytes per download)."""

    def __init__(self, tmp_path, fingerprint: str, chunks):
        import http.server
        import ssl

        from corral.pki import certs
        crt, key = certs.generate("fake-image-server")
        (tmp_path / "srv.crt").write_bytes(crt)
        (tmp_path / "srv.key").write_bytes(key)
        self.pem = crt.decode()
        self.fingerprint = fingerprint
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                import json
                path = self.path.split("?")[0]
                if path == f"/1.0/images/{fake.fingerprint}":
                    body = json.dumps({"type": "sync", "status": "Success", "status_code": 200, "metadata": {
                        "fingerprint": fake.fingerprint, "size": 0, "properties": {}, "filename": "bomb"}}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif path == f"/1.0/images/{fake.fingerprint}/export":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        for chunk in chunks():
                            self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                        pass   # the client stopped reading: what a refused download does
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tmp_path / "srv.crt"), str(tmp_path / "srv.key"))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _pull(d, srv):
    r = d.request("POST", "/1.0/images", {"source": {
        "type": "image", "mode": "pull", "protocol": "lxd", "server": srv.url,
        "fingerprint": srv.fingerprint, "certificate": srv.pem}}, timeout=120)
    return _refusal(d, r)


def test_remote_pull_of_a_bomb_refused(limited, tmp_path):
    import hashlib
    d = limited
    bomb = imagegen.write(tmp_path / "bomb.tar.gz", imagegen.zero_bomb(3 << 30, 16 * MIB)).read_bytes()
    fp = hashlib.sha256(bomb).hexdigest()
    with FakeImageServer(tmp_path, fp, lambda: iter([bomb])) as srv:
        (status, err), gap, _ = assert_refused_fast(d, lambda: _pull(d, srv))
    assert status == 400 and "images.max_unpacked_size" in err, err
    assert gap < 1.0


def test_remote_download_past_the_limit_stopped(limited, tmp_path):
    """An uncompressed 300 MiB download: refused while it is being received (the server does not
    even get to send it all), nothing kept."""
    d = limited
    sent = []

    def chunks():
        for c in imagegen.zero_bomb(300 * MIB, 16 * MIB):
            sent.append(len(c))
            yield c
    with FakeImageServer(tmp_path, "ab" * 32, chunks) as srv:
        before = snapshot(d)
        status, err = _pull(d, srv)
        assert snapshot(d) == before
    assert status == 400 and "its size passes images.max_unpacked_size" in err, err
    assert sum(sent) < 300 * MIB


# ---- the other ways images arrive: publish, and unpacking into another pool ------------------------

def test_publish_and_unpack_bounded_too(limited):
    d = limited
    name, pool = unique("pub"), unique("p")
    d.lxc("init", "busybox", name)
    r = d.request("POST", "/1.0/storage-pools", {"name": pool, "driver": "dir"})
    assert r.status in (200, 201), r.body
    try:
        d.lxc("config", "set", "images.max_unpacked_size", "64KiB")
        before = snapshot(d)
        res = d.lxc("publish", name, "--alias", unique("pubimg"), check=False, timeout=120)
        assert res.returncode != 0 and "images.max_unpacked_size (64.00KiB)" in res.stderr, res.stderr
        assert snapshot(d) == before
        # the busybox image is not unpacked in the new pool yet: unpacking it there is bounded too
        res = d.lxc("init", "busybox", unique("c"), "-s", pool, check=False, timeout=120)
        assert res.returncode != 0 and "images.max_unpacked_size" in res.stderr, res.stderr
        assert [e for e in os.listdir(os.path.join(d.dir, "storage-pools", pool, "images"))] == []
    finally:
        d.lxc("config", "set", "images.max_unpacked_size", "200MiB")
        d.lxc("delete", "-f", name, check=False)
        d.request("DELETE", f"/1.0/storage-pools/{pool}")
