"""The test images pylxd's and LXD's own suites build, imported into corrald and launched with the
real `lxc` client (issue 10, acceptance point 2).

- pylxd 2.4.2's `integration/busybox.py` (from the source distribution `scripts/setup.sh --test`
  downloads), imported unchanged: a unified xz tarball whose `/etc/inittab` member is named
  `/rootfs/etc/inittab` (leading slash), and its split form (metadata tarball + rootfs tarball).
- LXD's `test/deps/import-busybox`, reproduced here (its layout, not its code): the same members,
  a split form whose *metadata* tarball carries `/rootfs/etc/inittab` (so the rootfs/ entries of a
  metadata tarball are unpacked first and the rootfs tarball goes on top, as LXD does), a
  `templates/template.tpl` with its `/template` entry, and the multipart upload it makes by hand
  (`Content-Disposition: form-data; name=metadata;` without quotes). One host-dependent detail is
  left out: Debian's `busybox --list-full` lists `bin/busybox` itself, which LXD's builder would
  turn into a symlink to itself over the binary (an image that cannot start on LXD either);
  pylxd's copy of the builder skips it, and so does this one.
"""
from __future__ import annotations

import hashlib
import http.client
import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import uuid

import pytest

from helpers import ROOT, unique

pytestmark = pytest.mark.integration

PYLXD_BUSYBOX = os.path.join(ROOT, "build", "pylxd-sdist", "pylxd-2.4.2", "integration", "busybox.py")


def pylxd_builder():
    if not os.path.isfile(PYLXD_BUSYBOX):
        pytest.fail(f"{PYLXD_BUSYBOX} is missing: run `scripts/setup.sh --test` (make test does)")
    spec = importlib.util.spec_from_file_location("pylxd_integration_busybox", PYLXD_BUSYBOX)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Busybox()


# ---- LXD's test/deps/import-busybox layout -------------------------------------------------------

TEMPLATE = """name: {{ container.name }}
architecture: {{ container.architecture }}
privileged: {{ container.privileged }}
ephemeral: {{ container.ephemeral }}
trigger: {{ trigger }}
path: {{ path }}
user.foo: {{ config_get("user.foo", "_unset_") }}
"""


def lxd_test_image(workdir: str, split: bool, when: list[str]) -> list[str]:
    """Tarballs laid out as LXD's import-busybox makes them: [unified] or [metadata, rootfs]."""
    arch = os.uname().machine
    meta = {"architecture": arch, "creation_date": int(os.stat("/bin/busybox").st_ctime),
            "properties": {"os": "Busybox", "architecture": arch, "description": f"Busybox {arch}",
                           "name": f"busybox-{arch}"},
            "templates": {"/template": {"when": when, "template": "template.tpl"}}}
    main_path, root_path = os.path.join(workdir, "busybox.tar"), os.path.join(workdir, "busybox.rootfs.tar")
    main = tarfile.open(main_path, "w:")
    rootfs = tarfile.open(root_path, "w:") if split else main
    pre = "" if split else "rootfs/"

    def add(name, kind=tarfile.REGTYPE, data=None, mode=0o644, tar=None, linkname=""):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.linkname = kind, mode, linkname
        if data is not None:
            info.size = len(data)
        (tar or rootfs).addfile(info, io.BytesIO(data) if data is not None else None)

    with open("/bin/busybox", "rb") as f:
        add(pre + "bin/busybox", data=f.read(), mode=0o755)
    listing = subprocess.run(["/bin/busybox", "--list-full"], capture_output=True, text=True, check=True)
    for path in filter(None, (p.strip() for p in listing.stdout.splitlines())):
        if path != "bin/busybox":
            add(pre + path, tarfile.SYMTYPE, linkname="/bin/busybox", mode=0o777)
    for path in ("dev", "mnt", "proc", "root", "sys", "tmp"):
        add(pre + path, tarfile.DIRTYPE, mode=0o755)
    add("templates", tarfile.DIRTYPE, mode=0o755, tar=main)
    add("templates/template.tpl", data=TEMPLATE.encode(), tar=main)
    add("metadata.yaml", data=json.dumps(meta, sort_keys=True, indent=4).encode() + b"\n", tar=main)
    add("/rootfs/etc/inittab", data=b"\n", tar=main)   # into the metadata tarball, also when split
    main.close()
    if split:
        rootfs.close()
    paths = [main_path] + ([root_path] if split else [])
    for p in paths:
        subprocess.run(["xz", "-9", p], check=True)
    return [p + ".xz" for p in paths]


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=120)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def upload_split_like_import_busybox(sock: str, meta: str, rootfs: str) -> dict:
    """POST /1.0/images with the multipart body LXD's import-busybox writes by hand."""
    boundary = str(uuid.uuid1())
    body = b""
    for name, path in (("metadata", meta), ("rootfs", rootfs)):
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name={name};\r\n"
                 "Content-Type: application/octet-stream\r\n\r\n").encode()
        with open(path, "rb") as f:
            body += f.read() + b"\r\n"
    body += f"--{boundary}--\r\n\r\n".encode()
    conn = UnixHTTP(sock)
    conn.request("POST", "/1.0/images", body, {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                               "X-LXD-public": "1"})
    r = conn.getresponse()
    op = json.loads(r.read())
    assert r.status == 202, op
    conn.request("GET", op["operation"] + "/wait")
    r = conn.getresponse()
    done = json.loads(r.read())["metadata"]
    conn.close()
    assert done["status_code"] == 200, done
    return done["metadata"]


# ---- the tests -------------------------------------------------------------------------------

def launch_and_check(host, alias: str, template: bool = False) -> None:
    c = unique("ti")
    try:
        host.lxc("launch", alias, c, "-c", "user.foo=bar")
        out = host.lxc("exec", c, "--", "/bin/sh", "-c", "echo alive; cat /etc/inittab | wc -c").stdout.split()
        assert out == ["alive", "1"], out   # /etc/inittab came from the `/rootfs/etc/inittab` member
        assert host.lxc("exec", c, "--", "readlink", "/bin/sh").stdout.strip() == "/bin/busybox"
        if template:
            rendered = host.lxc("exec", c, "--", "cat", "/template").stdout
            assert f"name: {c}\n" in rendered and "trigger: create\n" in rendered, rendered
            assert "user.foo: bar\n" in rendered and "path: /template\n" in rendered, rendered
    finally:
        host.lxc("delete", "-f", c, check=False)


def remove_image(host, alias: str) -> None:
    host.lxc("image", "delete", alias, check=False)


def test_pylxd_unified_image(host):
    bb = pylxd_builder()
    alias = unique("pyu")
    try:
        path = bb.create_tarball()
        names = tarfile.open(path).getnames()
        assert "/rootfs/etc/inittab" in names     # what this is about
        out = host.lxc("image", "import", path, "--alias", alias).stdout
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() in out
        launch_and_check(host, alias)
    finally:
        remove_image(host, alias)
        bb.cleanup()


def test_pylxd_split_image(host):
    bb = pylxd_builder()
    alias = unique("pys")
    try:
        meta, rootfs = bb.create_tarball(split=True)
        host.lxc("image", "import", meta, rootfs, "--alias", alias)
        launch_and_check(host, alias)
    finally:
        remove_image(host, alias)
        bb.cleanup()


def test_lxd_unified_image(host):
    work = tempfile.mkdtemp(prefix="corral-lxdimg-")
    alias = unique("lxu")
    try:
        (path,) = lxd_test_image(work, split=False, when=["create"])
        host.lxc("image", "import", path, "--alias", alias)
        launch_and_check(host, alias, template=True)
    finally:
        remove_image(host, alias)
        shutil.rmtree(work, ignore_errors=True)


def test_lxd_split_image_metadata_carries_rootfs_entries(host):
    work = tempfile.mkdtemp(prefix="corral-lxdimg-")
    alias, alias2 = unique("lxs"), unique("lxh")
    try:
        meta, rootfs = lxd_test_image(work, split=True, when=["create"])
        assert "/rootfs/etc/inittab" in tarfile.open(meta).getnames()
        host.lxc("image", "import", meta, rootfs, "--alias", alias)
        launch_and_check(host, alias, template=True)
        # the same image as import-busybox uploads it (hand-made multipart), under another fingerprint
        work2 = tempfile.mkdtemp(dir=work)
        meta2, rootfs2 = lxd_test_image(work2, split=True, when=[""])   # its default: `when: [""]`
        info = upload_split_like_import_busybox(host.socket, meta2, rootfs2)
        with open(meta2, "rb") as a, open(rootfs2, "rb") as b:
            assert info["fingerprint"] == hashlib.sha256(a.read() + b.read()).hexdigest()
        host.lxc("image", "alias", "create", alias2, info["fingerprint"])
        launch_and_check(host, alias2)
    finally:
        remove_image(host, alias)
        remove_image(host, alias2)
        shutil.rmtree(work, ignore_errors=True)


def test_image_profiles_apply_when_instance_names_none(host):
    """LXD 5.0: an instance created from an image without `profiles` gets the image's profiles
    (checked against the real LXD: absent or null -> the image's list, even empty; [] -> none)."""
    bb = pylxd_builder()
    alias, prof = unique("ipr"), unique("ip")
    made = []
    try:
        host.lxc("image", "import", bb.create_tarball(), "--alias", alias)
        host.lxc("profile", "copy", "default", prof)
        host.lxc("profile", "set", prof, "user.from", "image-profile")
        fp = host.get(f"/1.0/images/aliases/{alias}").metadata["target"]
        r = host.request("PATCH", f"/1.0/images/{fp}", body={"profiles": [prof]})
        assert r.status == 200, r.body
        for name, extra in ((unique("ia"), {}), (unique("in"), {"profiles": None}),
                            (unique("id"), {"profiles": ["default"]})):
            r = host.request("POST", "/1.0/instances", body={"name": name, "source": {"type": "image", "alias": alias},
                                                              **extra})
            assert r.status == 202, r.body
            made.append(name)
            assert host.wait_op(r)["status_code"] == 200
        got = [host.get(f"/1.0/instances/{n}").metadata["profiles"] for n in made]
        assert got == [[prof], [prof], ["default"]]
        assert host.get(f"/1.0/instances/{made[0]}").metadata["expanded_config"]["user.from"] == "image-profile"
        # an explicit empty list means no profile at all (and so no root disk here): refused (LXD fails
        # the same request in its operation, with the same "No root device could be found")
        r = host.request("POST", "/1.0/instances", body={"name": unique("ie"), "profiles": [],
                                                          "source": {"type": "image", "alias": alias}})
        assert r.status == 400 and "root" in r.json["error"].lower(), r.body
    finally:
        for n in made:
            host.lxc("delete", "-f", n, check=False)
        remove_image(host, alias)
        host.lxc("profile", "delete", prof, check=False)
        bb.cleanup()
