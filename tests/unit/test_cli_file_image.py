"""`corral file ...` and `corral image ...` against the fake server."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_cli_fakeserver import error, fake, run, sync  # noqa: E402,F401


# ---------------------------------------------------------------- files


@pytest.fixture
def fs(fake):
    """A tiny in-memory file tree behind /1.0/instances/c1/files."""
    fake.add_instance("c1")
    tree = {"/": {"type": "directory", "mode": 0o755}}

    def handler(req):
        path = req.query["path"]
        if req.method == "GET":
            node = tree.get(path)
            if node is None:
                return error("Not Found")
            headers = {"X-LXD-type": node["type"], "X-LXD-mode": f"{node['mode']:04o}",
                       "X-LXD-uid": "0", "X-LXD-gid": "0"}
            if node["type"] == "directory":
                prefix = path.rstrip("/") + "/"
                entries = sorted(p[len(prefix):] for p in tree if p.startswith(prefix) and "/" not in p[len(prefix):]
                                 and p != path)
                return (*sync(entries), headers)
            return 200, node["data"], headers
        if req.method == "POST":
            parent = os.path.dirname(path)
            if parent not in tree:
                return error("Not Found")
            tree[path] = {"type": req.headers["X-LXD-type"], "mode": int(req.headers["X-LXD-mode"], 8),
                          "uid": req.headers["X-LXD-uid"], "gid": req.headers["X-LXD-gid"],
                          "write": req.headers.get("X-LXD-write"), "data": req.body}
            return sync({})
        if req.method == "DELETE":
            tree.pop(path, None)
            return sync({})

    for method in ("GET", "POST", "DELETE"):
        fake.route(method, "/1.0/instances/c1/files", handler)
    return tree


def test_file_push_single(fs, run, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    src.chmod(0o640)
    result = run("file", "push", str(src), "c1/hello.txt")
    assert result.exit_code == 0, result.stderr
    node = fs["/hello.txt"]
    assert node["data"] == b"hello\n" and node["mode"] == 0o640 and node["type"] == "file"
    assert node["write"] == "overwrite"
    assert node["uid"] == str(os.getuid())
    assert run("file", "push", "--mode", "0600", "--uid", "5", "--gid", "6", str(src), "c1/").exit_code == 0
    assert (fs["/hello.txt"]["mode"], fs["/hello.txt"]["uid"], fs["/hello.txt"]["gid"]) == (0o600, "5", "6")


def test_file_push_create_dirs_and_stdin(fs, run):
    result = run("file", "push", "-", "c1/a/b/c.txt", input="data")
    assert (result.exit_code, result.stderr) == (1, "Error: Not Found\n")
    assert run("file", "push", "-p", "-", "c1/a/b/c.txt", input="data").exit_code == 0
    assert fs["/a"]["type"] == "directory" and fs["/a/b"]["type"] == "directory"
    assert fs["/a/b/c.txt"]["data"] == b"data"


def test_file_push_recursive_and_pull_back(fs, run, tmp_path):
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    os.symlink("a.txt", src / "link")
    assert run("file", "push", "-r", str(src), "c1/").exit_code == 0
    assert fs["/tree"]["type"] == "directory"
    assert fs["/tree/sub/b.txt"]["data"] == b"B"
    assert fs["/tree/link"]["type"] == "symlink" and fs["/tree/link"]["data"] == b"a.txt"

    out = tmp_path / "out"
    out.mkdir()
    assert run("file", "pull", "-r", "c1/tree", str(out)).exit_code == 0
    assert (out / "tree" / "a.txt").read_text() == "A"
    assert (out / "tree" / "sub" / "b.txt").read_text() == "B"
    assert os.readlink(out / "tree" / "link") == "a.txt"
    result = run("file", "pull", "c1/tree", str(tmp_path / "x"))
    assert result.stderr == "Error: Can't pull a directory without --recursive\n"


def test_file_pull_stdout_and_delete(fs, run, tmp_path):
    run("file", "push", "-", "c1/f.bin", input="\x00\x01binary")
    assert run("file", "pull", "c1/f.bin", "-").stdout_bytes == b"\x00\x01binary"
    dest = tmp_path / "f.bin"
    assert run("file", "pull", "c1/f.bin", str(dest)).exit_code == 0
    assert dest.read_bytes() == b"\x00\x01binary"
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    assert run("file", "delete", "c1/f.bin").exit_code == 0
    assert "/f.bin" not in fs
    result = run("file", "pull", "c1/f.bin", "-")
    assert (result.exit_code, result.stderr) == (1, "Error: Not Found\n")


# ---------------------------------------------------------------- images

IMG = {"auto_update": False, "properties": {"description": "Busybox x86_64", "os": "Busybox"}, "public": False,
       "expires_at": "1970-01-01T00:00:00Z", "profiles": ["default"],
       "aliases": [{"name": "bb", "description": ""}, {"name": "busybox", "description": ""}],
       "architecture": "x86_64", "cached": False, "filename": "busybox.tar.gz",
       "fingerprint": "ec29b117accc086e8d1f94d6f5ab32a556975f50425c0d5cb82b62c13ef1b6c1", "size": 1036726,
       "type": "container", "created_at": "2026-11-21T13:54:00Z", "last_used_at": "0001-01-01T00:00:00Z",
       "uploaded_at": "2026-11-21T13:54:15.123Z"}


@pytest.fixture
def images(fake, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    fp = IMG["fingerprint"]
    fake.route("GET", "/1.0/images", lambda req: sync([IMG]))
    fake.route("GET", f"/1.0/images/{fp}", lambda req: (*sync(IMG), {"ETag": "img"}))
    fake.route("GET", "/1.0/images/aliases/bb", lambda req: sync({"name": "bb", "target": fp}))
    return fp


def test_image_list(images, run):
    assert run("image", "list").stdout == (
        "+-------------+--------------+--------+----------------+--------------+-----------+--------+"
        "------------------------------+\n"
        "|    ALIAS    | FINGERPRINT  | PUBLIC |  DESCRIPTION   | ARCHITECTURE |   TYPE    |  SIZE  |"
        "         UPLOAD DATE          |\n"
        "+-------------+--------------+--------+----------------+--------------+-----------+--------+"
        "------------------------------+\n"
        "| bb (1 more) | ec29b117accc | no     | Busybox x86_64 | x86_64       | CONTAINER | 0.99MB |"
        " Nov 21, 2026 at 1:54pm (UTC) |\n"
        "+-------------+--------------+--------+----------------+--------------+-----------+--------+"
        "------------------------------+\n"
    )
    assert run("image", "list", "-f", "csv", "-c", "Lf").stdout == '"bb\nbusybox",ec29b117accc\n'
    assert json.loads(run("image", "list", "-f", "json").stdout)[0]["fingerprint"] == images


def test_image_show_info(images, run):
    assert run("image", "show", "bb").stdout == (
        "auto_update: false\nproperties:\n  description: Busybox x86_64\n  os: Busybox\npublic: false\n"
        "expires_at: 1970-01-01T00:00:00Z\nprofiles:\n- default\n")
    info = run("image", "info", "bb").stdout
    assert info.startswith(f"Fingerprint: {images}\nSize: 0.99MB\nArchitecture: x86_64\nType: container\n"
                           "Public: no\nTimestamps:\n    Created: 2026/11/21 13:54 UTC\n"
                           "    Uploaded: 2026/11/21 13:54 UTC\n    Expires: never\n    Last used: never\n")
    assert "Aliases:\n    - bb\n    - busybox\n" in info


def test_image_import_unified(fake, run, tmp_path):
    tarball = tmp_path / "img.tar.gz"
    tarball.write_bytes(b"tarball-bytes" * 100)
    fake.route("POST", "/1.0/images",
               lambda req: fake.async_response(metadata={"fingerprint": "f00d", "size": 1300}))
    fake.route("GET", "/1.0/images/aliases/mine", lambda req: error("not found"))
    fake.route("POST", "/1.0/images/aliases", lambda req: sync(None))
    result = run("image", "import", str(tarball), "--alias", "mine", "--public", "os=busybox")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Image imported with fingerprint: f00d\n"
    req = fake.find("POST", "/1.0/images")[-1]
    assert req.body == tarball.read_bytes()
    assert req.headers["Content-Type"] == "application/octet-stream"
    assert req.headers["X-LXD-filename"] == "img.tar.gz"
    assert req.headers["X-LXD-public"] == "true"
    assert req.headers["X-LXD-properties"] == "os=busybox"
    assert fake.find("POST", "/1.0/images/aliases")[-1].json == {"name": "mine", "description": "",
                                                                  "target": "f00d"}


def test_image_import_split_is_multipart(fake, run, tmp_path):
    meta, rootfs = tmp_path / "meta.tar.xz", tmp_path / "rootfs.squashfs"
    meta.write_bytes(b"META")
    rootfs.write_bytes(b"ROOTFS")
    fake.route("POST", "/1.0/images", lambda req: fake.async_response(metadata={"fingerprint": "beef"}))
    assert run("image", "import", str(meta), str(rootfs)).exit_code == 0
    req = fake.find("POST", "/1.0/images")[-1]
    assert req.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    body = req.body.decode()
    assert 'name="metadata"; filename="meta.tar.xz"' in body and "META" in body
    assert 'name="rootfs"; filename="rootfs.squashfs"' in body and "ROOTFS" in body


def test_image_delete_export_alias(images, fake, run, tmp_path):
    fake.route("DELETE", f"/1.0/images/{images}", lambda req: fake.async_response())
    assert run("image", "delete", "bb").exit_code == 0
    assert fake.find("DELETE", f"/1.0/images/{images}")
    fake.route("GET", f"/1.0/images/{images}/export",
               lambda req: (200, b"IMAGEDATA", {"Content-Disposition": f"attachment; filename={images}.tar.gz"}))
    assert run("image", "export", "bb", str(tmp_path)).stdout == "Image exported successfully!\n"
    assert (tmp_path / f"{images}.tar.gz").read_bytes() == b"IMAGEDATA"
    assert run("image", "export", "bb", str(tmp_path / "named")).exit_code == 0
    assert (tmp_path / "named.tar.gz").read_bytes() == b"IMAGEDATA"

    fake.route("POST", "/1.0/images/aliases", lambda req: sync(None))
    assert run("image", "alias", "create", "new", images).exit_code == 0
    assert fake.find("POST", "/1.0/images/aliases")[-1].json == {"name": "new", "description": "",
                                                                  "target": images}
    fake.route("GET", "/1.0/images/aliases", lambda req: sync(
        [{"name": "bb", "description": "", "target": images, "type": "container"}]))
    assert run("image", "alias", "list", "-f", "csv").stdout == "bb,ec29b117accc,CONTAINER,\n"
    fake.route("POST", "/1.0/images/aliases/bb", lambda req: sync(None))
    assert run("image", "alias", "rename", "bb", "cc").exit_code == 0
    assert fake.find("POST", "/1.0/images/aliases/bb")[-1].json == {"name": "cc"}
    fake.route("DELETE", "/1.0/images/aliases/bb", lambda req: sync(None))
    assert run("image", "alias", "delete", "bb").exit_code == 0


def test_image_build_busybox(fake, run, tmp_path, monkeypatch):
    import corral.cli.busybox as bb

    def fake_build(dest_dir, **kw):
        path = os.path.join(dest_dir, "busybox.tar.gz")
        with open(path, "wb") as f:
            f.write(b"BUSYBOX")
        return path

    monkeypatch.setattr(bb, "build_busybox_image", fake_build)
    fake.route("POST", "/1.0/images", lambda req: fake.async_response(metadata={"fingerprint": "b0b"}))
    fake.route("GET", "/1.0/images/aliases/busybox", lambda req: error("not found"))
    fake.route("POST", "/1.0/images/aliases", lambda req: sync(None))
    result = run("image", "build", "busybox")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Image imported with fingerprint: b0b\n"
    assert fake.find("POST", "/1.0/images")[-1].body == b"BUSYBOX"
    assert fake.find("POST", "/1.0/images/aliases")[-1].json["name"] == "busybox"
