"""The VM test image through the images API with the real `lxc` client (issue 14): `corral image
build busybox --vm` imports it; `lxc image import META ROOTFS.img` on a second corrald gives the
same fingerprint (sha256 over both files) and LXD 5.0.2's fields (checked by hand against the real
LXD on the same files: docs/vm-images.md); `lxc image info`/`list` say virtual-machine;
`lxc image export` gives back both files byte for byte (`meta-<fp>.tar.xz`, `<fp>.qcow2`);
`lxc image copy other:x local:` pulls it; `lxc image import` of a unified tarball holding rootfs.img
is a VM image too."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile

import pytest

from helpers import Corrald, free_port, unique
from vmlib import vm_image  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def _sha(*paths: str) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def pair():
    """Two initialised corralds on HTTPS (127.0.0.1), `other` added as a remote of `host`'s lxc."""
    made = []
    home = tempfile.mkdtemp(prefix="corral-lxc-home-")
    try:
        for _ in range(2):
            d = Corrald()
            made.append(d)
            d.start()
            d.run("corrald", "init", "--auto", check=True)
            r = d.request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{free_port()}"}})
            assert r.status == 200, r.body
        host, other = made
        host.env = dict(host.env, HOME=home, LXD_CONF=os.path.join(home, "lxc"))
        token = other.lxc("config", "trust", "add", "--name", unique("cli")).stdout.strip().splitlines()[-1]
        host.lxc("remote", "add", "other", token.strip())
        yield host, other
    finally:
        for d in made:
            d.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def _info(d: Corrald, name: str) -> dict:
    return d.get(f"/1.0/images/{d.get(f'/1.0/images/aliases/{name}').metadata['target']}").metadata


def test_build_import_info_export_pull(pair, vm_image, tmp_path):
    host, other = pair
    fp = _sha(vm_image.metadata, vm_image.rootfs)

    # the CLI builds (from the cache here: the fixture built it) and imports it
    out = host.run("corral", "image", "build", "busybox", "--vm", "--alias", "bbvm", check=True).stdout
    assert fp in out, out
    img = _info(host, "bbvm")
    assert img["type"] == "virtual-machine" and img["fingerprint"] == fp
    assert img["size"] == os.path.getsize(vm_image.metadata) + os.path.getsize(vm_image.rootfs)
    assert img["architecture"] == "x86_64" and img["filename"] == "rootfs.img"
    assert img["properties"]["requirements.secureboot"] == "false"
    assert img["properties"]["os"] == "busybox"

    # the real lxc on the other daemon: same fingerprint, same fields
    out = other.lxc("image", "import", vm_image.metadata, vm_image.rootfs, "--alias", "vmimg", "--public").stdout
    assert fp in out, out
    theirs = _info(other, "vmimg")
    for key in ("fingerprint", "type", "size", "architecture", "filename", "properties", "created_at"):
        assert theirs[key] == img[key], key
    info = other.lxc("image", "info", "vmimg").stdout
    assert "Type: virtual-machine" in info and f"Fingerprint: {fp}" in info, info
    assert "requirements.secureboot: false" in info, info
    listing = other.lxc("image", "list", "-c", "lt", "--format", "csv").stdout
    assert "vmimg,VIRTUAL-MACHINE" in listing, listing

    # export gives back both files, named as LXD names them
    exp = tmp_path / "export"
    exp.mkdir()
    other.lxc("image", "export", "vmimg", str(exp) + "/")
    assert sorted(os.listdir(exp)) == sorted([f"meta-{fp}.tar.xz", f"{fp}.qcow2"])
    assert _sha(str(exp / f"meta-{fp}.tar.xz")) == _sha(vm_image.metadata)
    assert _sha(str(exp / f"{fp}.qcow2")) == _sha(vm_image.rootfs)

    # pulled from the other server into a fresh store
    host.wait_op(host.request("DELETE", f"/1.0/images/{fp}"))
    assert not os.path.exists(os.path.join(host.dir, "images", fp))
    host.lxc("image", "copy", "other:vmimg", "local:", "--alias", "pulled")
    pulled = _info(host, "pulled")
    assert pulled["type"] == "virtual-machine" and pulled["fingerprint"] == fp
    assert _sha(os.path.join(host.dir, "images", fp)) == _sha(vm_image.metadata)
    assert _sha(os.path.join(host.dir, "images", fp + ".rootfs")) == _sha(vm_image.rootfs)
    host.wait_op(host.request("DELETE", f"/1.0/images/{fp}"))
    other.wait_op(other.request("DELETE", f"/1.0/images/{fp}"))


def test_unified_vm_tarball_with_lxc(pair, vm_image, tmp_path):
    _, other = pair
    tree = tmp_path / "tree"
    tree.mkdir()
    with tarfile.open(vm_image.metadata) as t:
        t.extractall(tree, filter="data")
    shutil.copyfile(vm_image.rootfs, tree / "rootfs.img")
    unified = tmp_path / "unified.tar.gz"
    with tarfile.open(unified, "w:gz") as t:
        for name in ("metadata.yaml", "templates", "rootfs.img"):
            t.add(tree / name, arcname=name)
    out = other.lxc("image", "import", str(unified), "--alias", "uni").stdout
    fp = _sha(str(unified))
    assert fp in out, out
    img = _info(other, "uni")
    assert img["type"] == "virtual-machine" and img["filename"] == "unified.tar.gz"
    exp = tmp_path / "exp"
    exp.mkdir()
    other.lxc("image", "export", "uni", str(exp) + "/")
    assert os.listdir(exp) == [f"{fp}.tar.gz"] and _sha(str(exp / f"{fp}.tar.gz")) == fp
    other.wait_op(other.request("DELETE", f"/1.0/images/{fp}"))
