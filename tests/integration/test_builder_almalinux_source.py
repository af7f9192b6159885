"""Acceptance 3 of issue 15: the almalinux-http source (and images/almalinux-9.yaml's source step) against
a local mirror of the almalinux-http layout (tests/sourcesfixture.py): ISO found in the listing, CHECKSUM
and its signature checked, the boot ISO's install image unpacked and its package manager run in a chroot;
a bad checksum or signature refused with nothing left behind. Needs root (loop mount, chroot)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

from corral.builder import sources
from corral.builder.sources import SourceError
from corral.builder.sources.verify import VerificationError
from helpers import wait_for
from sourcesfixture import AlmaLinuxFixture, MirrorServer, SigningKey, almalinux_mirror, boot_iso, remove_cached_isos

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ISO_NAME = "AlmaLinux-9.4-x86_64-boot.iso"


@pytest.fixture(scope="module", autouse=True)
def _isos():
    yield
    remove_cached_isos()


@pytest.fixture(scope="module")
def key():
    k = SigningKey("AlmaLinux fixture")
    yield k
    k.close()


@pytest.fixture(scope="module")
def other_key():
    k = SigningKey("Not AlmaLinux")
    yield k
    k.close()


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="corral-almafix.")
    for sub in ("www", "cache", "rootfs"):
        os.makedirs(os.path.join(d, sub))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _definition(url: str, **source) -> dict:
    return {"image": {"distribution": "almalinux", "release": "9", "architecture": "x86_64",
                      "architecture_mapped": "x86_64", "variant": "default"},
            "source": {"downloader": "almalinux-http", "url": url, "variant": "boot", **source}}


def _files(d: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(p, f), d) for p, _, fs in os.walk(d) for f in fs)


def _chrooted(work: str) -> list[str]:
    """The processes whose root directory is inside `work`."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.readlink(f"/proc/{pid}/root").startswith(work):
                pids.append(pid)
        except OSError:
            pass
    return pids


def _no_leftovers(work: str) -> None:
    assert not _chrooted(work)
    with open("/proc/self/mountinfo") as f:
        assert work not in f.read()
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert work not in loops
    assert not any(n.startswith(("rhel-unpack.", "almalinux.")) for n in os.listdir(os.path.join(work, "cache")))


@pytest.mark.parametrize("layout", ["install", "live"])
def test_almalinux_http_builds_from_local_mirror(work, key, layout):
    almalinux_mirror(os.path.join(work, "www"), key, boot_iso(layout))
    rootfs, cache = os.path.join(work, "rootfs"), os.path.join(work, "cache")
    with MirrorServer(os.path.join(work, "www")) as srv:
        d = _definition(srv.url + "/almalinux", keys=[key.public])
        sources.get("almalinux-http")(d, cache).run(rootfs)
        isos = [p for p in srv.requests if p.endswith(".iso")]
    assert isos == [f"/almalinux/9/isos/x86_64/{ISO_NAME}"]          # the newest 9.x, once
    fx = os.path.join(rootfs, "var", "lib", "fixture")
    assert open(os.path.join(rootfs, "etc", "os-release")).read().endswith('VERSION_ID="9"\n')
    assert open(os.path.join(fx, "packages")).read().split() == ["basesystem", "almalinux-release", "yum"]
    assert "--installroot=/rootfs" in open(os.path.join(fx, "dnf-args")).read()
    repos = open(os.path.join(fx, "repos")).read()
    assert f"baseurl={srv.url}/almalinux/$releasever/BaseOS/$basearch/os/" in repos and "gpgcheck=1" in repos
    assert open(os.path.join(fx, "rpm-gpg-key")).read().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert open(os.path.join(fx, "chroot-mounts")).read() == "ok\n"   # /proc and /dev in the chroot
    assert not os.path.exists(os.path.join(rootfs, "var", "cache", "dnf"))
    assert os.path.islink(os.path.join(rootfs, "bin", "sh"))
    assert [os.path.basename(f) for f in _files(cache)] == [".lock", ISO_NAME]
    _no_leftovers(work)


def test_almalinux_definition_source_step_with_keyserver_and_cache(work):
    """images/almalinux-9.yaml as shipped, pointed at the fixture the way `corral-builder build-dir ...
    -o source.url=... -o source.keyserver=... -o source.keys=FPR` does; the second run uses the cache."""
    with open(os.path.join(REPO, "images", "almalinux-9.yaml")) as f:
        d = yaml.safe_load(f)
    assert d["source"]["downloader"] == "almalinux-http"
    assert d["source"]["url"] == "https://repo.almalinux.org/almalinux"
    cache = os.path.join(work, "cache")
    with AlmaLinuxFixture() as fx:
        for o in fx.overrides:                     # what the builder's -o does with them
            k, _, v = o.partition("=")
            d["source"][k.split(".")[1]] = [v] if k == "source.keys" else v
        d["image"]["architecture_mapped"] = "x86_64"
        for run in (1, 2):
            rootfs = os.path.join(work, f"rootfs{run}")
            os.makedirs(rootfs)
            sources.get(d["source"]["downloader"])(d, cache).run(rootfs)
            assert os.path.isfile(os.path.join(rootfs, "var", "lib", "fixture", "packages"))
        assert [p for p in fx.server.requests if p.endswith(".iso")] == [f"/almalinux/9/isos/x86_64/{ISO_NAME}"]
        assert any(p.startswith("/pks/lookup") for p in fx.server.requests)
    # the new root takes the rest of a build: its dnf and systemctl (the fixture's) answer and record
    subprocess.run(["chroot", rootfs, "/bin/sh", "-c", "dnf install -y curl sudo && dnf clean all && "
                    "systemctl enable NetworkManager.service && touch /etc/hosts"], check=True)
    fxd = os.path.join(rootfs, "var", "lib", "fixture")
    assert open(os.path.join(fxd, "installed")).read().split() == ["curl", "sudo"]
    assert open(os.path.join(fxd, "systemctl-log")).read() == "enable NetworkManager.service\n"
    _no_leftovers(work)


@pytest.mark.parametrize("tamper", ["iso", "signature", "wrong-key"])
def test_almalinux_http_refuses_bad_checksum_or_signature(work, key, other_key, tamper):
    almalinux_mirror(os.path.join(work, "www"), key, boot_iso("install"),
                     tamper=None if tamper == "wrong-key" else tamper)
    rootfs, cache = os.path.join(work, "rootfs"), os.path.join(work, "cache")
    with MirrorServer(os.path.join(work, "www")) as srv:
        d = _definition(srv.url + "/almalinux", keys=[(other_key if tamper == "wrong-key" else key).public])
        want = {"iso": rf"Checksum mismatch for {ISO_NAME}: expected sha256 [0-9a-f]{{64}}, got",
                "signature": r"Invalid signature for CHECKSUM \(http://127.0.0.1:\d+/almalinux/9/isos/x86_64/"
                             r"CHECKSUM\): BAD signature",
                "wrong-key": r"Invalid signature for CHECKSUM .*signed by a key that is not in source.keys"}[tamper]
        with pytest.raises(VerificationError, match=want):
            sources.get("almalinux-http")(d, cache).run(rootfs)
        if tamper != "iso":   # a refused CHECKSUM: the ISO is never even downloaded
            assert not [p for p in srv.requests if p.endswith(".iso")]
    assert os.listdir(rootfs) == []
    assert _files(cache) == []
    _no_leftovers(work)


def test_almalinux_http_needs_keys_over_plain_http(work):
    with pytest.raises(SourceError, match="GPG keys are required if downloading from HTTP"):
        sources.get("almalinux-http")(_definition("http://127.0.0.1:1/almalinux"), os.path.join(work, "cache")) \
            .run(os.path.join(work, "rootfs"))


def test_almalinux_http_no_matching_iso(work, key):
    almalinux_mirror(os.path.join(work, "www"), key, boot_iso("install"))
    with MirrorServer(os.path.join(work, "www")) as srv:
        d = _definition(srv.url + "/almalinux", keys=[key.public], variant="dvd")
        with pytest.raises(SourceError, match=r'No AlmaLinux 9 "dvd" ISO for x86_64 in http://127.0.0.1:\d+/'):
            sources.get("almalinux-http")(d, os.path.join(work, "cache")).run(os.path.join(work, "rootfs"))


def test_shipped_almalinux_definition_fails_fast_without_its_mirror(work):
    """Here the real mirror is unreachable: the user sees that reason at once, not a hang."""
    try:
        socket.getaddrinfo("repo.almalinux.org", 443)
        pytest.skip("repo.almalinux.org resolves here: the real mirror may be reachable")
    except socket.gaierror:
        pass
    with open(os.path.join(REPO, "images", "almalinux-9.yaml")) as f:
        d = yaml.safe_load(f)
    d["image"]["architecture_mapped"] = "x86_64"
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r'Failed to download "https://repo.almalinux.org/almalinux/9/isos/x86_64/": '
                                          r'cannot resolve host "repo.almalinux.org"'):
        sources.get("almalinux-http")(d, os.path.join(work, "cache")).run(os.path.join(work, "rootfs"))
    assert time.monotonic() - t0 < 30
    assert os.listdir(os.path.join(work, "rootfs")) == []


_KILLED_BUILD = r"""
import sys
sys.path.insert(0, sys.argv[4])
from corral.builder import sources
d = {"image": {"distribution": "almalinux", "release": "99", "architecture_mapped": "x86_64"},
     "source": {"downloader": "almalinux-http", "url": sys.argv[1], "keys": [open(sys.argv[2]).read()]}}
sources.get("almalinux-http")(d, sys.argv[3]).run(sys.argv[5])
"""


def test_killed_build_leaves_no_mount_loop_or_process(work, key):
    """SIGKILL of the builder while dnf runs in the chroot: the namespace's processes die with it, so its
    mounts and the loop device go; the next build clears the scratch directory the killed one left."""
    almalinux_mirror(os.path.join(work, "www"), key, boot_iso("install"), release="99.1", major="99")
    cache, rootfs = os.path.join(work, "cache"), os.path.join(work, "rootfs")
    keyfile = os.path.join(work, "key.asc")
    with open(keyfile, "w") as f:
        f.write(key.public)
    with MirrorServer(os.path.join(work, "www")) as srv:
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, srv.url + "/almalinux", keyfile, cache,
                                 REPO, rootfs], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: glob.glob(os.path.join(cache, "almalinux.*", "rhel-unpack.*", "root",
                                                    "var", "tmp", "fixture-dnf-running")), timeout=60)
            assert _chrooted(work)            # dnf (the fixture's) runs chrooted in the scratch tree
            proc.kill()
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

        def gone():
            loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
            return work not in loops and not _chrooted(work)
        wait_for(gone, timeout=20)
        assert glob.glob(os.path.join(cache, "almalinux.*"))          # the killed build's scratch dir
        almalinux_mirror(os.path.join(work, "www"), key, boot_iso("install"))
        sources.get("almalinux-http")(_definition(srv.url + "/almalinux", keys=[key.public]), cache).run(rootfs)
        assert os.path.isfile(os.path.join(rootfs, "var", "lib", "fixture", "packages"))
        assert not glob.glob(os.path.join(cache, "almalinux.*"))      # cleared by the next build
    _no_leftovers(work)


def _squashfs_cat(image: str, path: str) -> str:
    return subprocess.run(["unsquashfs", "-cat", image, path], capture_output=True, text=True, check=True).stdout


def test_corral_builder_builds_the_almalinux_image_from_the_local_mirror(work):
    """The whole build, as a user runs it: `corral-builder build-lxd images/almalinux-9.yaml` pointed at the
    fixture with -o (the signing key by fingerprint from the fixture's keyserver), through the source, the
    actions, dnf (the fixture's, recording) and the generators, to a split LXD image."""
    import tarfile
    out = os.path.join(work, "img")
    with AlmaLinuxFixture() as fx:
        args = [os.path.join(os.path.dirname(sys.executable), "corral-builder"), "--cache-dir",
                os.path.join(work, "cache")]
        for o in fx.overrides:                    # source.keys is a list: its first item replaced
            args += ["-o", o.replace("source.keys=", "source.keys.0=")]
        res = subprocess.run(args + ["build-lxd", os.path.join(REPO, "images", "almalinux-9.yaml"), out,
                                     "--type", "split", "--compression", "gzip"],
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        assert any(p.startswith("/pks/lookup") for p in fx.server.requests)
    assert sorted(os.listdir(out)) == ["lxd.tar.gz", "rootfs.squashfs"]
    with tarfile.open(os.path.join(out, "lxd.tar.gz")) as tar:
        meta = yaml.safe_load(tar.extractfile("metadata.yaml"))
    assert meta["architecture"] == "x86_64"
    assert {k: meta["properties"][k] for k in ("os", "release", "variant")} == \
        {"os": "almalinux", "release": "9", "variant": "default"}
    assert "/etc/hostname" in meta["templates"] and "/etc/hosts" in meta["templates"]
    squash = os.path.join(out, "rootfs.squashfs")
    log = _squashfs_cat(squash, "var/lib/fixture/dnf-log").splitlines()
    assert log[0] == "-y makecache" and log[1] == "-y upgrade" and log[-1] == "-y clean all", log
    installed = _squashfs_cat(squash, "var/lib/fixture/installed").split()
    assert "NetworkManager" in installed and "sudo" in installed and "cloud-init" not in installed  # cloud only
    _no_leftovers(work)
