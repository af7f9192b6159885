"""Virtual-machine images through the images API against a real corrald, with small VM images made
here (a metadata tarball and a qcow2 disk from qemu-img): split uploads with a `rootfs.img` part,
unified tarballs holding rootfs.img, LXD's fields and fingerprint, export of both files, and refusals
(raw split disk, qcow2 naming a backing file, no metadata.yaml, a container from a VM image) that
leave nothing behind."""
import hashlib
import io
import os
import subprocess
import tarfile
import time

import pytest
import yaml

from helpers import unique

from test_images import multipart, parse_multipart   # noqa: F401 (shared helpers of the image tests)

pytestmark = pytest.mark.skipif(subprocess.run(["which", "qemu-img"], capture_output=True).returncode != 0,
                                reason="qemu-img is needed")


def _tar(entries: dict[str, bytes], compress: str = "xz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compress}") as tar:
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), int(time.time()), 0o644
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _metadata(description: str) -> bytes:
    return yaml.safe_dump({"architecture": "x86_64", "creation_date": int(time.time()),
                           "properties": {"os": "test", "release": "1", "description": description,
                                          "requirements.secureboot": "false"}}).encode()


def _qcow2(tmp_path, fmt: str = "qcow2", backing: str | None = None) -> bytes:
    path = tmp_path / unique("disk")
    cmd = ["qemu-img", "create", "-q", "-f", fmt]
    if backing:
        cmd += ["-b", backing, "-F", "raw"]
    subprocess.run(cmd + [str(path), "4M"], check=True)
    with open(path, "r+b") as f:   # some content, so two disks differ
        f.seek(0, os.SEEK_END)
        f.write(os.urandom(512))
    return path.read_bytes()


@pytest.fixture(scope="module")
def pool(daemon):
    """A dir pool `default` and a root disk on it in the default profile (for the container test)."""
    if daemon.get("/1.0/storage-pools/default").status == 404:
        r = daemon.request("POST", "/1.0/storage-pools", {"name": "default", "driver": "dir"})
        assert r.status in (200, 201), r.body
    r = daemon.request("PATCH", "/1.0/profiles/default",
                       {"devices": {"root": {"type": "disk", "path": "/", "pool": "default"}}})
    assert r.status == 200, r.body


def _post(daemon, body: bytes, ctype: str, **headers):
    return daemon.request("POST", "/1.0/images", raw=body, headers={"Content-Type": ctype, **headers}, timeout=120)


def _import_ok(daemon, body: bytes, ctype: str, **headers) -> dict:
    r = _post(daemon, body, ctype, **headers)
    assert r.status == 202, r.body
    op = daemon.wait_op(r)
    assert op["status"] == "Success", op
    return op


def _images_dir_files(daemon) -> set[str]:
    return {n for n in os.listdir(os.path.join(daemon.dir, "images")) if not n.startswith(".")}


def test_split_vm_image_upload_fields_and_export(daemon, pool, tmp_path):
    meta = _tar({"metadata.yaml": _metadata(unique("vm")), "templates/hostname.tpl": b"{{ instance.name }}\n"})
    disk = _qcow2(tmp_path)
    body, ctype = multipart([("metadata", "meta.tar.xz", meta), ("rootfs.img", "disk.qcow2", disk)])
    alias = unique("vm")
    op = _import_ok(daemon, body, ctype, **{"X-LXD-aliases": alias})
    fp = hashlib.sha256(meta + disk).hexdigest()   # LXD: sha256 over the metadata tarball then the disk
    assert op["metadata"]["fingerprint"] == fp

    img = daemon.get(f"/1.0/images/{fp}").metadata
    assert img["type"] == "virtual-machine"
    assert img["size"] == len(meta) + len(disk)
    assert img["filename"] == "disk.qcow2"   # LXD keeps the rootfs part's file name
    assert img["properties"]["requirements.secureboot"] == "false"
    assert img["architecture"] == "x86_64" and img["aliases"] == [{"name": alias, "description": ""}]
    a = daemon.get(f"/1.0/images/aliases/{alias}").metadata
    assert a["type"] == "virtual-machine" and a["target"] == fp

    # kept as they came, as LXD does: <fp> and <fp>.rootfs; nothing unpacked into the pool
    with open(os.path.join(daemon.dir, "images", fp), "rb") as f:
        assert f.read() == meta
    with open(os.path.join(daemon.dir, "images", fp + ".rootfs"), "rb") as f:
        assert f.read() == disk
    assert not os.path.exists(os.path.join(daemon.dir, "storage-pools", "default", "images", fp))

    r = daemon.get(f"/1.0/images/{fp}/export")
    assert r.status == 200 and r.headers["Content-Type"].startswith("multipart/form-data")
    parts = parse_multipart(r.body, r.headers["Content-Type"])
    assert [(n, d) for n, d in parts] == [("metadata", meta), ("rootfs.img", disk)]
    assert f'filename="{fp}.qcow2"' in r.body.decode("latin-1")   # LXD names the disk <fp>.qcow2
    assert f'filename="meta-{fp}.tar.xz"' in r.body.decode("latin-1")

    # a container from a VM image: LXD's refusal, and nothing made
    r = daemon.request("POST", "/1.0/instances", {"name": unique("c"), "type": "container",
                                                  "source": {"type": "image", "alias": alias}})
    if r.status == 202:
        op = daemon.wait_op(r)
        assert op["status"] == "Failure", op
        err = op["err"]
    else:
        err = r.json["error"]
    assert 'Requested image\'s type "virtual-machine" doesn\'t match instance type "container"' in err
    assert not os.path.exists(os.path.join(daemon.dir, "storage-pools", "default", "images", fp))

    r = daemon.request("DELETE", f"/1.0/images/{fp}")
    assert daemon.wait_op(r)["status"] == "Success"
    assert not {fp, fp + ".rootfs"} & _images_dir_files(daemon)


def test_unified_vm_image(daemon, pool, tmp_path):
    disk = _qcow2(tmp_path)
    data = _tar({"metadata.yaml": _metadata(unique("vm")), "rootfs.img": disk}, compress="gz")
    op = _import_ok(daemon, data, "application/octet-stream", **{"X-LXD-filename": "unified.tar.gz"})
    fp = op["metadata"]["fingerprint"]
    assert fp == hashlib.sha256(data).hexdigest()
    img = daemon.get(f"/1.0/images/{fp}").metadata
    assert img["type"] == "virtual-machine" and img["filename"] == "unified.tar.gz"
    assert not os.path.exists(os.path.join(daemon.dir, "images", fp + ".rootfs"))
    r = daemon.get(f"/1.0/images/{fp}/export")
    assert r.status == 200 and r.body == data
    assert f"filename={fp}.tar.gz" in r.headers["Content-Disposition"]
    r = daemon.request("DELETE", f"/1.0/images/{fp}")
    assert daemon.wait_op(r)["status"] == "Success"


@pytest.mark.parametrize("case", ["raw-split", "backing-file", "no-metadata", "rootfs-tree-in-unified"])
def test_bad_vm_images_refused_leave_nothing(daemon, pool, tmp_path, case):
    before = _images_dir_files(daemon)
    meta = _tar({"metadata.yaml": _metadata(unique("bad"))})
    if case == "raw-split":
        body, ctype = multipart([("metadata", "m.tar.xz", meta), ("rootfs.img", "d.img", _qcow2(tmp_path, "raw"))])
        want = "Unsupported compression"
    elif case == "backing-file":
        secret = tmp_path / "host-file"
        secret.write_bytes(b"host data" * 100)
        disk = _qcow2(tmp_path, backing=str(secret))
        body, ctype = multipart([("metadata", "m.tar.xz", meta), ("rootfs.img", "d.qcow2", disk)])
        want = "backing file"
    elif case == "no-metadata":
        body, ctype = multipart([("metadata", "m.tar.xz", _tar({"templates/x.tpl": b"x"})),
                                 ("rootfs.img", "d.qcow2", _qcow2(tmp_path))])
        want = "missing metadata.yaml"
    else:
        body = _tar({"metadata.yaml": _metadata(unique("bad")), "rootfs.img": _qcow2(tmp_path),
                     "rootfs/etc/hostname": b"x\n"}, compress="gz")
        ctype = "application/octet-stream"
        want = "rootfs.img, not a rootfs/ tree"
    r = _post(daemon, body, ctype)
    assert r.status == 202, r.body
    op = daemon.wait_op(r)
    assert op["status"] == "Failure" and want in op["err"], op
    assert _images_dir_files(daemon) == before
    assert not [n for n in os.listdir(os.path.join(daemon.dir, "images")) if n.startswith(".corral_build_")]
