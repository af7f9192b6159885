"""Images and image aliases against a real corrald: uploads (unified, split, via lxc), shapes, aliases,
prefix lookups, export, deletion, and malicious uploads leaving nothing behind."""
import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import uuid

import pytest
import yaml

from helpers import sample, unique

from corral.cli.busybox import build_busybox_image


# ---- fixtures and helpers ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pool(daemon):
    """The `default` dir pool, where uploads are validated and unpacked."""
    r = daemon.get("/1.0/storage-pools/default")
    if r.status == 404:
        r = daemon.request("POST", "/1.0/storage-pools", {"name": "default", "driver": "dir"})
        assert r.status in (200, 201), r.body
    return os.path.join(daemon.dir, "storage-pools", "default")


@pytest.fixture(scope="module")
def busybox(tmp_path_factory):
    return build_busybox_image(str(tmp_path_factory.mktemp("busybox")))


def sha256(path_or_bytes) -> str:
    if isinstance(path_or_bytes, bytes):
        return hashlib.sha256(path_or_bytes).hexdigest()
    with open(path_or_bytes, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fresh_image(tmp_path, description=None) -> str:
    """A busybox image with its own fingerprint (creation_date/description differ)."""
    return build_busybox_image(str(tmp_path / uuid.uuid4().hex), description=description or unique("desc"))


def upload(daemon, data: bytes, headers=None):
    h = {"Content-Type": "application/octet-stream"}
    h.update(headers or {})
    return daemon.request("POST", "/1.0/images", raw=data, headers=h, timeout=120)


def import_file(daemon, path, **headers) -> str:
    with open(path, "rb") as f:
        data = f.read()
    r = upload(daemon, data, {"X-LXD-filename": os.path.basename(path), **headers})
    assert r.status == 202, r.body
    op = daemon.wait_op(r)
    assert op["status"] == "Success", op
    return op["metadata"]["fingerprint"]


def multipart(parts):
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, filename, data in parts:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                  f"Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def parse_multipart(body: bytes, ctype: str) -> list[tuple[str, bytes]]:
    from email.parser import BytesParser
    from email.policy import HTTP
    msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    return [(p.get_param("name", header="content-disposition"), p.get_payload(decode=True))
            for p in msg.iter_parts()]


def image_state(daemon, pool_dir):
    images = sorted(os.listdir(os.path.join(daemon.dir, "images")))
    pool_images = os.path.join(pool_dir, "images")
    pooled = sorted(os.listdir(pool_images)) if os.path.isdir(pool_images) else []
    rows = daemon.run("corrald", "sql", "global", "SELECT fingerprint FROM images", check=True).stdout
    return images, pooled, rows


def tar_bytes(entries, compress=True) -> bytes:
    """entries: (name, kind, payload): kind 'file' (bytes), 'dir', 'symlink' (target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = int(time.time())
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, payload
                tar.addfile(ti)
            else:
                ti.size, ti.mode = len(payload), 0o644
                tar.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


META = yaml.safe_dump({"architecture": "x86_64", "creation_date": 1700000000,
                       "properties": {"os": "test", "description": "malicious"}}).encode()


def assert_rejected(daemon, pool_dir, data: bytes, needle: str):
    before = image_state(daemon, pool_dir)
    r = upload(daemon, data)
    if r.status == 202:
        op = daemon.wait_op(r)
        assert op["status"] == "Failure", op
        err = op["err"]
    else:
        assert r.status == 400, r.body
        err = r.json["error"]
    assert needle.lower() in err.lower(), err
    assert image_state(daemon, pool_dir) == before


# ---- tests --------------------------------------------------------------------------------------------

def test_upload_unified_shape_and_files(daemon, pool, busybox):
    fp = import_file(daemon, busybox)
    assert fp == sha256(busybox)
    r = daemon.get(f"/1.0/images/{fp}")
    assert r.status == 200 and r.headers["ETag"].startswith('"')
    want, got = sample("image.json"), r.json
    assert set(got) == set(want)
    assert set(got["metadata"]) == set(want["metadata"])
    for k, v in want["metadata"].items():
        assert type(got["metadata"][k]) is type(v), k
    img = got["metadata"]
    assert img["fingerprint"] == fp and img["size"] == os.path.getsize(busybox)
    assert img["filename"] == os.path.basename(busybox)
    assert img["architecture"] == "x86_64" and img["type"] == "container"
    assert img["properties"]["os"] == "busybox" and img["profiles"] == ["default"]
    assert img["expires_at"] == "1970-01-01T00:00:00Z" and img["last_used_at"] == "0001-01-01T00:00:00Z"
    assert img["public"] is False and img["aliases"] == []
    # the original, the pool's unpacked copy
    st = os.stat(os.path.join(daemon.dir, "images"))
    assert st.st_mode & 0o777 == 0o700
    assert open(os.path.join(daemon.dir, "images", fp), "rb").read() == open(busybox, "rb").read()
    assert os.path.isfile(os.path.join(pool, "images", fp, "rootfs", "bin", "busybox"))
    assert os.path.isfile(os.path.join(pool, "images", fp, "metadata.yaml"))
    # listings
    assert f"/1.0/images/{fp}" in daemon.get("/1.0/images").metadata
    listed = daemon.get("/1.0/images?recursion=1").metadata
    assert [i for i in listed if i["fingerprint"] == fp][0] == img
    # duplicate
    with open(busybox, "rb") as f:
        r = upload(daemon, f.read())
    op = daemon.wait_op(r)
    assert op["status"] == "Failure" and op["err"] == "Image with same fingerprint already exists"
    # export: identical bytes
    r = daemon.get(f"/1.0/images/{fp[:12]}/export")
    assert r.status == 200 and r.body == open(busybox, "rb").read()
    assert r.headers["Content-Disposition"] == f"inline;filename={fp}.tar.gz"
    # delete
    r = daemon.request("DELETE", f"/1.0/images/{fp}")
    assert r.status == 202 and r.json["metadata"]["description"] == "Deleting image"
    assert daemon.wait_op(r)["status"] == "Success"
    assert daemon.get(f"/1.0/images/{fp}").status == 404
    assert not os.path.exists(os.path.join(daemon.dir, "images", fp))
    assert not os.path.exists(os.path.join(pool, "images", fp))


def test_upload_headers_and_fingerprint_mismatch(daemon, pool, tmp_path):
    path = fresh_image(tmp_path)
    data = open(path, "rb").read()
    r = upload(daemon, data, {"X-LXD-fingerprint": "0" * 64})
    assert r.status == 400 and "fingerprints don't match" in r.json["error"]
    r = upload(daemon, data, {"X-LXD-fingerprint": sha256(data), "X-LXD-public": "true",
                              "X-LXD-filename": "my.tar.gz", "X-LXD-properties": "os=custom&extra=a%20b"})
    op = daemon.wait_op(r)
    assert op["status"] == "Success", op
    assert op["metadata"] == {"fingerprint": sha256(data), "size": str(len(data))}
    img = daemon.get(f"/1.0/images/{sha256(data)}").metadata
    assert img["public"] is True and img["filename"] == "my.tar.gz"
    assert img["properties"]["os"] == "custom" and img["properties"]["extra"] == "a b"
    assert img["properties"]["name"].startswith("busybox-")
    assert daemon.wait_op(daemon.request("DELETE", f"/1.0/images/{sha256(data)}"))["status"] == "Success"


def test_aliases_prefix_put_patch_etag(daemon, pool, tmp_path):
    fp = import_file(daemon, fresh_image(tmp_path))
    name, renamed = unique("alias"), unique("renamed")
    r = daemon.request("POST", "/1.0/images/aliases", {"name": name, "target": fp[:10], "description": "d"})
    assert r.status == 201 and r.headers["Location"] == f"/1.0/images/aliases/{name}"
    r = daemon.request("POST", "/1.0/images/aliases", {"name": name, "target": fp})
    assert r.status == 409
    assert daemon.request("POST", "/1.0/images/aliases", {"name": unique("a"), "target": "ffff" * 16}).status == 404
    assert daemon.request("POST", "/1.0/images/aliases", {"name": "x"}).status == 400
    r = daemon.get(f"/1.0/images/aliases/{name}")
    assert r.status == 200 and r.headers["ETag"].startswith('"')
    want = sample("images-alias-busybox.json")
    assert set(r.json["metadata"]) == set(want["metadata"])
    assert r.metadata == {"description": "d", "target": fp, "name": name, "type": "container"}
    assert f"/1.0/images/aliases/{name}" in daemon.get("/1.0/images/aliases").metadata
    assert r.metadata in daemon.get("/1.0/images/aliases?recursion=1").metadata
    assert daemon.get(f"/1.0/images/{fp}").metadata["aliases"] == [{"name": name, "description": "d"}]
    # alias ETag
    etag = r.headers["ETag"]
    assert daemon.request("PATCH", f"/1.0/images/aliases/{name}", {"description": "e"},
                          headers={"If-Match": etag}).status == 200
    assert daemon.request("PATCH", f"/1.0/images/aliases/{name}", {"description": "f"},
                          headers={"If-Match": etag}).status == 412
    assert daemon.request("PUT", f"/1.0/images/aliases/{name}", {"description": "x"}).status == 400
    assert daemon.request("PUT", f"/1.0/images/aliases/{name}", {"target": fp}).status == 200
    assert daemon.get(f"/1.0/images/aliases/{name}").metadata["description"] == ""
    # rename
    r = daemon.request("POST", f"/1.0/images/aliases/{name}", {"name": renamed})
    assert r.status == 201 and r.headers["Location"] == f"/1.0/images/aliases/{renamed}"
    assert daemon.get(f"/1.0/images/aliases/{name}").status == 404
    assert daemon.get(f"/1.0/images/aliases/{renamed}").metadata["target"] == fp
    # prefix lookups
    assert daemon.get(f"/1.0/images/{fp[:8]}").metadata["fingerprint"] == fp
    assert daemon.get("/1.0/images/zz").status == 404
    # image PUT/PATCH and ETag
    r = daemon.get(f"/1.0/images/{fp}")
    etag = r.headers["ETag"]
    r2 = daemon.request("PATCH", f"/1.0/images/{fp}", {"properties": {"k": "v"}, "public": True},
                        headers={"If-Match": etag})
    assert r2.status == 200, r2.body
    img = daemon.get(f"/1.0/images/{fp}").metadata
    assert img["properties"]["k"] == "v" and img["properties"]["os"] == "busybox" and img["public"] is True
    assert daemon.request("PATCH", f"/1.0/images/{fp}", {"public": False}, headers={"If-Match": etag}).status == 412
    r = daemon.request("PUT", f"/1.0/images/{fp}", {"properties": {"only": "this"}, "auto_update": True,
                                                    "expires_at": "2030-01-02T03:04:05Z"})
    assert r.status == 200, r.body
    img = daemon.get(f"/1.0/images/{fp}").metadata
    assert img["properties"] == {"only": "this"} and img["auto_update"] is True and img["public"] is False
    assert img["expires_at"] == "2030-01-02T03:04:05Z" and img["profiles"] == ["default"]
    r = daemon.request("PUT", f"/1.0/images/{fp}", {"profiles": ["nope-" + unique()]})
    assert r.status == 400 and "doesn't exist" in r.json["error"]
    # a refresh needs a source (this image was uploaded, not downloaded from another server)
    op = daemon.wait_op(daemon.request("POST", f"/1.0/images/{fp}/refresh"))
    assert op["status"] == "Failure" and "no source to refresh from" in op["err"]
    # not implemented bits are clear
    assert daemon.request("POST", f"/1.0/images/{fp}/export", {"target": "x"}).status == 501
    assert daemon.request("POST", "/1.0/images", {"source": {"type": "url", "url": "http://x"}}).status == 501
    r = daemon.request("POST", "/1.0/images", {"source": {"type": "instance", "name": "c1"}})
    assert r.status == 501 or r.status == 202
    # alias delete; image delete removes its aliases
    assert daemon.request("DELETE", f"/1.0/images/aliases/{renamed}").status == 200
    assert daemon.get(f"/1.0/images/aliases/{renamed}").status == 404
    daemon.request("POST", "/1.0/images/aliases", {"name": name, "target": fp})
    assert daemon.wait_op(daemon.request("DELETE", f"/1.0/images/{fp}"))["status"] == "Success"
    assert daemon.get(f"/1.0/images/aliases/{name}").status == 404


def test_ambiguous_prefix(daemon, pool, tmp_path):
    fps = [import_file(daemon, fresh_image(tmp_path)) for _ in range(17)]
    # 17 fingerprints: two of them share their first hex digit
    firsts = [fp[0] for fp in fps]
    dup = next(c for c in firsts if firsts.count(c) > 1)
    r = daemon.get(f"/1.0/images/{dup}")
    assert r.status == 400 and "More than one image matches" in r.json["error"]
    for fp in fps:
        assert daemon.wait_op(daemon.request("DELETE", f"/1.0/images/{fp}"))["status"] == "Success"


def test_split_upload_and_export(daemon, pool, tmp_path):
    meta = tar_bytes([("metadata.yaml", "file", META), ("templates", "dir", None)])
    rootfs = tar_bytes([("bin", "dir", None), ("bin/hello", "file", b"hi\n"),
                        ("etc", "dir", None), ("etc/hostname", "file", uuid.uuid4().hex.encode())])
    body, ctype = multipart([("metadata", "meta.tar.gz", meta), ("rootfs", "root.tar.gz", rootfs)])
    r = daemon.request("POST", "/1.0/images", raw=body, headers={"Content-Type": ctype})
    assert r.status == 202, r.body
    op = daemon.wait_op(r)
    assert op["status"] == "Success", op
    fp = op["metadata"]["fingerprint"]
    assert fp == sha256(meta + rootfs)
    img = daemon.get(f"/1.0/images/{fp}").metadata
    assert img["size"] == len(meta) + len(rootfs) and img["filename"] == "root.tar.gz"
    assert img["properties"] == {"os": "test", "description": "malicious"}
    assert open(os.path.join(daemon.dir, "images", fp), "rb").read() == meta
    assert open(os.path.join(daemon.dir, "images", fp + ".rootfs"), "rb").read() == rootfs
    assert open(os.path.join(pool, "images", fp, "rootfs", "bin", "hello"), "rb").read() == b"hi\n"
    r = daemon.get(f"/1.0/images/{fp}/export")
    assert r.status == 200 and r.headers["Content-Type"].startswith("multipart/form-data")
    parts = parse_multipart(r.body, r.headers["Content-Type"])
    assert parts == [("metadata", meta), ("rootfs", rootfs)]
    assert daemon.wait_op(daemon.request("DELETE", f"/1.0/images/{fp}"))["status"] == "Success"
    assert not os.path.exists(os.path.join(daemon.dir, "images", fp + ".rootfs"))
    # bad multipart
    body, ctype = multipart([("rootfs", "r", rootfs)])
    r = daemon.request("POST", "/1.0/images", raw=body, headers={"Content-Type": ctype})
    assert r.status == 400 and "Invalid multipart image" in r.json["error"]


def test_malicious_uploads_leave_nothing(daemon, pool):
    rootfs = [("rootfs", "dir", None), ("rootfs/bin", "dir", None)]
    cases = [
        (tar_bytes([("metadata.yaml", "file", META), *rootfs, ("../escape", "file", b"x")]), "'..'"),
        (tar_bytes([("metadata.yaml", "file", META), *rootfs, ("rootfs/evil", "symlink", "/"),
                    ("rootfs/evil/tmp/x", "file", b"x")]), "symlink"),
        (tar_bytes([("metadata.yaml", "file", META), *rootfs, ("rootfs/bin/big", "file", os.urandom(300000))])
         [:-2000], "Invalid image tarball"),
        (tar_bytes([("metadata.yaml", "file", b"architecture: [unclosed\n"), *rootfs]), "metadata.yaml"),
        (tar_bytes([("metadata.yaml", "file", b"architecture: nope\ncreation_date: 1\n"), *rootfs]),
         "unknown architecture"),
        (tar_bytes([*rootfs]), "missing metadata.yaml"),
        (gzip.compress(b"not a tarball at all" * 100), "Invalid image tarball"),
    ]
    for data, needle in cases:
        assert_rejected(daemon, pool, data, needle)
    assert not os.path.exists("/escape") or os.path.getmtime("/escape") < time.time() - 3600
    assert not any(n.startswith(".corral_build_") for n in os.listdir(os.path.join(daemon.dir, "images")))


def test_lxc_client(daemon, pool, tmp_path):
    path = fresh_image(tmp_path)
    fp = sha256(path)
    alias = unique("lxcimg")
    res = daemon.lxc("image", "import", path, "--alias", alias)
    assert fp in res.stdout
    images = json.loads(daemon.lxc("image", "list", "--format", "json").stdout)
    mine = [i for i in images if i["fingerprint"] == fp]
    assert mine and mine[0]["aliases"] == [{"name": alias, "description": ""}]
    out = daemon.lxc("image", "list").stdout
    assert alias in out and fp[:12] in out
    out = daemon.lxc("image", "alias", "list").stdout
    assert alias in out and fp[:12] in out
    info = daemon.lxc("image", "info", alias).stdout
    assert fp in info
    again = daemon.lxc("image", "import", path, check=False)
    assert again.returncode != 0 and "Image with same fingerprint already exists" in again.stderr
    target = tmp_path / "exported"
    daemon.lxc("image", "export", alias, str(target))
    exported = [p for p in tmp_path.iterdir() if p.name.startswith("exported")]
    assert exported and sha256(str(exported[0])) == fp
    daemon.lxc("image", "alias", "rename", alias, alias + "x")
    daemon.lxc("image", "alias", "delete", alias + "x")
    assert daemon.get(f"/1.0/images/aliases/{alias}x").status == 404
    daemon.lxc("image", "delete", fp[:12])
    assert daemon.get(f"/1.0/images/{fp}").status == 404
    assert not os.path.exists(os.path.join(daemon.dir, "images", fp))


def test_lxc_split_import(daemon, pool, tmp_path):
    meta = tmp_path / "meta.tar.gz"
    rootfs = tmp_path / "rootfs.tar.gz"
    meta.write_bytes(tar_bytes([("metadata.yaml", "file", META)]))
    rootfs.write_bytes(tar_bytes([("bin", "dir", None), ("x", "file", uuid.uuid4().hex.encode())]))
    res = daemon.lxc("image", "import", str(meta), str(rootfs))
    fp = sha256(meta.read_bytes() + rootfs.read_bytes())
    assert fp in res.stdout
    out = tmp_path / "out"
    out.mkdir()
    daemon.lxc("image", "export", fp, str(out) + "/")
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 2, files
    daemon.lxc("image", "delete", fp)


def test_pylxd_images(daemon, pool, tmp_path):
    pylxd = pytest.importorskip("pylxd")
    client = pylxd.Client(endpoint=daemon.socket)
    data = open(fresh_image(tmp_path), "rb").read()
    image = client.images.create(data, public=True, wait=True)
    assert image.fingerprint == sha256(data) and image.public is True
    alias = unique("py")
    image.add_alias(alias, "from pylxd")
    assert client.images.get_by_alias(alias).fingerprint == image.fingerprint
    assert image.fingerprint in [i.fingerprint for i in client.images.all()]
    assert client.images.exists(image.fingerprint)
    image.properties["k"] = "v"
    image.save(wait=True)
    assert client.images.get(image.fingerprint).properties["k"] == "v"
    assert image.export().read() == data
    # split image through pylxd (multipart)
    meta = tar_bytes([("metadata.yaml", "file", META)])
    rootfs = tar_bytes([("bin", "dir", None), ("y", "file", uuid.uuid4().hex.encode())])
    split = client.images.create(rootfs, metadata=meta, wait=True)
    assert split.fingerprint == sha256(meta + rootfs)
    image.delete_alias(alias)
    image.delete(wait=True)
    split.delete(wait=True)
    assert not client.images.exists(sha256(data))


def test_publish_and_ensure_unpacked(daemon, pool, tmp_path):
    """Needs the instance layer: publish (lxc publish) and unpacking into a second pool on first use."""
    if daemon.get("/1.0/instances").status == 404:
        pytest.skip("no instance API")
    r = daemon.request("PATCH", "/1.0/profiles/default",
                       {"devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}})
    assert r.status == 200, r.body
    other = unique("pool")
    assert daemon.request("POST", "/1.0/storage-pools", {"name": other, "driver": "dir"}).status in (200, 201)
    other_dir = os.path.join(daemon.dir, "storage-pools", other)
    path = fresh_image(tmp_path)
    fp = sha256(path)
    alias, pub, c1, c2 = unique("src"), unique("pub"), unique("c"), unique("c")
    daemon.lxc("image", "import", path, "--alias", alias)
    assert not os.path.exists(os.path.join(other_dir, "images", fp))
    daemon.lxc("init", alias, c1, "-s", other)
    assert os.path.isdir(os.path.join(other_dir, "images", fp, "rootfs"))
    assert daemon.get(f"/1.0/images/{fp}").metadata["last_used_at"] != "0001-01-01T00:00:00Z"
    res = daemon.lxc("publish", c1, "--alias", pub, "extra=yes")
    pfp = daemon.get(f"/1.0/images/aliases/{pub}").metadata["target"]
    assert pfp in res.stdout
    img = daemon.get(f"/1.0/images/{pfp}").metadata
    assert img["properties"]["extra"] == "yes" and img["properties"]["os"] == "busybox"
    assert img["aliases"] == [{"name": pub, "description": ""}]
    assert sha256(os.path.join(daemon.dir, "images", pfp)) == pfp
    daemon.lxc("init", pub, c2)
    assert os.path.isdir(os.path.join(pool, "images", pfp, "rootfs"))
    for name in (c1, c2):
        daemon.lxc("delete", name)
    for f in (fp, pfp):
        daemon.lxc("image", "delete", f)
        assert not os.path.exists(os.path.join(pool, "images", f))
        assert not os.path.exists(os.path.join(other_dir, "images", f))
        assert not os.path.exists(os.path.join(daemon.dir, "images", f))
