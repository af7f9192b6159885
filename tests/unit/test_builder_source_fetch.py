"""The builder's HTTP sources' shared parts (corral/builder/sources/fetch.py, verify.py) and the
rootfs-http source, against a local HTTP server (tests/sourcesfixture.py) and real gpg/gpgv."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import tarfile
import tempfile
import time

import pytest

from corral.builder import sources
from corral.builder.sources import SourceError, fetch
from corral.builder.sources.almalinux_http import find_iso
from corral.builder.sources.verify import Keyring, VerificationError, parse_checksums, sha256_for
from helpers import free_port
from sourcesfixture import MirrorServer, SigningKey


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="corral-srcfetch.")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def key():
    k = SigningKey()
    yield k
    k.close()


@pytest.fixture(scope="module")
def other_key():
    k = SigningKey("Somebody Else")
    yield k
    k.close()


def _files(d: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(p, f), d) for p, _, fs in os.walk(d) for f in fs)


# --------------------------------------------------------------------------- checksum files, ISO names

def test_parse_checksums_bsd_and_gnu_formats():
    text = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
            "# AlmaLinux-9.4-x86_64-boot.iso: 1003487232 bytes\n"
            f"SHA256 (AlmaLinux-9.4-x86_64-boot.iso) = {'ab' * 32}\n"
            f"{'cd' * 32}  rootfs.tar.xz\n"
            f"{'ef' * 32} *other.img\n"
            f"MD5 (old.iso) = {'12' * 16}\n")
    c = parse_checksums(text)
    assert c["AlmaLinux-9.4-x86_64-boot.iso"] == {"SHA256": "ab" * 32}
    assert sha256_for(c, "rootfs.tar.xz", "SUMS") == "cd" * 32
    assert sha256_for(c, "other.img", "SUMS") == "ef" * 32
    with pytest.raises(VerificationError, match="not listed in SUMS"):
        sha256_for(c, "missing.iso", "SUMS")
    with pytest.raises(VerificationError, match="no SHA256 checksum for old.iso"):
        sha256_for(c, "old.iso", "SUMS")


def test_find_iso_newest_matching_release_and_variant():
    listing = "\n".join(f'<a href="{n}">{n}</a>' for n in [
        "AlmaLinux-9-latest-x86_64-boot.iso", "AlmaLinux-9.0-x86_64-boot.iso", "AlmaLinux-9.4-x86_64-boot.iso",
        "AlmaLinux-9.10-x86_64-boot.iso", "AlmaLinux-9.4-x86_64-minimal.iso", "AlmaLinux-9.4-x86_64-boot.iso.manifest",
        "AlmaLinux-9.4-aarch64-boot.iso", "AlmaLinux-8.9-x86_64-boot.iso", "CHECKSUM"])
    assert find_iso(listing, "9", "x86_64", "boot") == "AlmaLinux-9.10-x86_64-boot.iso"
    assert find_iso(listing, "9.4", "x86_64", "boot") == "AlmaLinux-9.4-x86_64-boot.iso"
    assert find_iso(listing, "9", "x86_64", "Minimal") == "AlmaLinux-9.4-x86_64-minimal.iso"
    assert find_iso(listing, "9", "aarch64", "boot") == "AlmaLinux-9.4-aarch64-boot.iso"
    assert find_iso(listing, "9", "ppc64le", "boot") is None
    assert find_iso("AlmaLinux-10.0-beta-1-x86_64-boot.iso", "10", "x86_64", "boot") == \
        "AlmaLinux-10.0-beta-1-x86_64-boot.iso"


# --------------------------------------------------------------------------- downloads

def test_download_cached_by_checksum_and_resumed(tmp):
    root, cache = os.path.join(tmp, "www"), os.path.join(tmp, "cache")
    os.makedirs(root)
    data = os.urandom(3 << 20)
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blob.bin"), "wb") as f:
        f.write(data)
    with MirrorServer(root) as srv:
        url = srv.url + "/blob.bin"
        path = fetch.download(url, cache, sha256=digest)
        assert open(path, "rb").read() == data
        assert fetch.download(url, cache, sha256=digest) == path
        assert srv.requests.count("/blob.bin") == 1            # the second one came from the cache
        # an interrupted download is resumed from where its .part stopped
        part = fetch.cache_path(cache, url + "?again", digest) + ".part"
        os.makedirs(os.path.dirname(part))
        with open(part, "wb") as f:
            f.write(data[:1000000])
        path2 = fetch.download(url + "?again", cache, sha256=digest)
        assert srv.ranges == [("/blob.bin?again", "bytes=1000000-")]
        assert open(path2, "rb").read() == data and not os.path.exists(part)


def test_download_checksum_mismatch_keeps_nothing(tmp):
    root, cache = os.path.join(tmp, "www"), os.path.join(tmp, "cache")
    os.makedirs(root)
    with open(os.path.join(root, "blob.bin"), "wb") as f:
        f.write(b"not what was signed")
    with MirrorServer(root) as srv:
        with pytest.raises(VerificationError, match=r"Checksum mismatch for blob.bin: expected sha256 0{64}"):
            fetch.download(srv.url + "/blob.bin", cache, sha256="0" * 64)
    assert _files(cache) == []


def test_download_errors_name_url_and_reason(tmp):
    with pytest.raises(fetch.NotFound, match=r'Failed to download "http://127.0.0.1:\d+/nope": HTTP 404'):
        with MirrorServer(tmp) as srv:
            fetch.download(srv.url + "/nope", os.path.join(tmp, "c"))
    port = free_port()
    with pytest.raises(fetch.FetchError, match=f'"http://127.0.0.1:{port}/x": connection to 127.0.0.1 refused'):
        fetch.get_document(f"http://127.0.0.1:{port}/x")
    t0 = time.monotonic()
    with pytest.raises(fetch.FetchError, match='cannot resolve host "mirror.corral.invalid"'):
        fetch.get_document("https://mirror.corral.invalid/almalinux/9/isos/x86_64/")
    assert time.monotonic() - t0 < 10
    with pytest.raises(fetch.FetchError, match='unsupported URL scheme "ftp"'):
        fetch.get_document("ftp://127.0.0.1/x")


def test_stalled_server_times_out(monkeypatch):
    monkeypatch.setattr(fetch, "CONNECT_TIMEOUT", 1.0)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)   # the kernel completes the handshake; nothing ever answers
    try:
        t0 = time.monotonic()
        with pytest.raises(fetch.FetchError, match="timed out after 1s"):
            fetch.get_document(f"http://127.0.0.1:{s.getsockname()[1]}/x")
        assert time.monotonic() - t0 < 5
    finally:
        s.close()


# --------------------------------------------------------------------------- keys and signatures

def test_clearsigned_checked_with_source_keys(tmp, key, other_key):
    p = os.path.join(tmp, "CHECKSUM")
    signed = key.clearsign(b"SHA256 (a.iso) = " + b"ab" * 32 + b"\n")
    with open(p, "wb") as f:
        f.write(signed + b"SHA256 (b.iso) = " + b"cd" * 32 + b"\n")   # unsigned text after the signature
    with Keyring([key.public]) as kr:
        text = kr.clearsigned_text(p, "CHECKSUM")
        assert b"a.iso" in text and b"b.iso" not in text            # only what the signature covers
        with open(p, "wb") as f:
            f.write(signed.replace(b"ab" * 32, b"ef" * 32))
        with pytest.raises(VerificationError, match="Invalid signature for CHECKSUM: BAD signature"):
            kr.clearsigned_text(p, "CHECKSUM")
    with open(p, "wb") as f:
        f.write(signed)
    with Keyring([other_key.public]) as kr:
        with pytest.raises(VerificationError, match="signed by a key that is not in source.keys"):
            kr.clearsigned_text(p, "CHECKSUM")
        home = kr.home
    assert not os.path.exists(home)


def test_keys_by_fingerprint_from_keyserver(tmp, key, other_key):
    with MirrorServer(tmp, keys=[key]) as srv:
        keyserver = f"hkp://127.0.0.1:{srv.port}"
        with Keyring(["0x" + key.fingerprint], keyserver) as kr:
            assert kr.fingerprints() == [key.fingerprint]
        with pytest.raises(SourceError, match=f"Failed to receive GPG keys {other_key.fingerprint} from keyserver"):
            with Keyring([other_key.fingerprint], keyserver):
                pass
    # a keyserver sending more than was asked for: only the key asked for is trusted
    p = os.path.join(tmp, "SUMS")
    with open(p, "wb") as f:
        f.write(other_key.clearsign(b"text\n"))
    with MirrorServer(tmp, keys=[key, other_key], hkp_sends_all=True) as srv:
        with Keyring([key.fingerprint], f"hkp://127.0.0.1:{srv.port}") as kr:
            assert sorted(kr.fingerprints()) == sorted([key.fingerprint, other_key.fingerprint])
            with pytest.raises(VerificationError, match="signed by a key that is not in source.keys"):
                kr.clearsigned_text(p, "SUMS")
    with pytest.raises(SourceError, match="neither a key block nor a fingerprint"):
        with Keyring(["not a key"]):
            pass


# --------------------------------------------------------------------------- rootfs-http

def _tarball(path: str, extra: list[tarfile.TarInfo] | None = None) -> str:
    with tarfile.open(path, "w:xz") as tar:
        for name, data in [("etc/os-release", b"ID=fixture\n"), ("bin/tool", b"#!/bin/sh\necho hi\n")]:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o755
            tar.addfile(ti, io.BytesIO(data))
        ln = tarfile.TarInfo("etc/mtab")
        ln.type, ln.linkname = tarfile.SYMTYPE, "/proc/self/mounts"   # absolute: resolves in the container
        tar.addfile(ln)
        for ti in extra or []:
            tar.addfile(ti, io.BytesIO(b"x" * ti.size) if ti.isreg() else None)
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _rootfs_def(url: str, **source) -> dict:
    return {"image": {"distribution": "fixture", "release": "1", "architecture": "x86_64"},
            "source": {"downloader": "rootfs-http", "url": url, **source}}


def test_rootfs_http_checksum_and_signature(tmp, key, other_key):
    www, cache, rootfs = (os.path.join(tmp, d) for d in ("www", "cache", "rootfs"))
    for d in (www, rootfs):
        os.makedirs(d)
    digest = _tarball(os.path.join(www, "rootfs.tar.xz"))
    with open(os.path.join(www, "rootfs.tar.xz.asc"), "wb") as f:
        f.write(key.detach_sign(open(os.path.join(www, "rootfs.tar.xz"), "rb").read()))
    with MirrorServer(www) as srv:
        url = f"{srv.url}/rootfs.tar.xz#sha256={digest}"
        sources.get("rootfs-http")(_rootfs_def(url, keys=[key.public]), cache).run(rootfs)
        assert open(os.path.join(rootfs, "etc/os-release")).read() == "ID=fixture\n"
        assert os.readlink(os.path.join(rootfs, "etc/mtab")) == "/proc/self/mounts"
        assert os.stat(os.path.join(rootfs, "bin/tool")).st_mode & 0o777 == 0o755
        assert "/rootfs.tar.xz#sha256" not in " ".join(srv.requests)     # the fragment stays local
        shutil.rmtree(rootfs)
        shutil.rmtree(cache)
        os.makedirs(rootfs)

        with pytest.raises(VerificationError, match="Checksum mismatch for rootfs.tar.xz"):
            sources.get("rootfs-http")(_rootfs_def(f"{srv.url}/rootfs.tar.xz#sha256={'0' * 64}"), cache).run(rootfs)
        assert os.listdir(rootfs) == [] and _files(cache) == []

        with pytest.raises(VerificationError, match="Invalid signature for rootfs.tar.xz: signed by a key that is not"):
            sources.get("rootfs-http")(_rootfs_def(url, keys=[other_key.public]), cache).run(rootfs)
        assert os.listdir(rootfs) == [] and _files(cache) == []

        with open(os.path.join(www, "rootfs.tar.xz.asc"), "wb") as f:
            f.write(key.detach_sign(b"some other file"))
        with pytest.raises(VerificationError, match="Invalid signature for rootfs.tar.xz: BAD signature"):
            sources.get("rootfs-http")(_rootfs_def(f"{srv.url}/rootfs.tar.xz", keys=[key.public]), cache).run(rootfs)
        assert os.listdir(rootfs) == [] and _files(cache) == []

        with pytest.raises(SourceError, match='Invalid checksum in source.url: "#md5=1"'):
            sources.get("rootfs-http")(_rootfs_def(f"{srv.url}/rootfs.tar.xz#md5=1"), cache).run(rootfs)


@pytest.mark.parametrize("bad", ["dotdot", "symlink-escape", "beneath-symlink"])
def test_rootfs_http_refuses_entries_escaping_the_root(tmp, bad):
    www, cache, rootfs = (os.path.join(tmp, d) for d in ("www", "cache", "rootfs"))
    for d in (www, rootfs):
        os.makedirs(d)
    extra = []
    if bad == "dotdot":
        ti = tarfile.TarInfo("etc/../../escaped")
        ti.size = 1
        extra.append(ti)
    elif bad == "symlink-escape":
        ti = tarfile.TarInfo("etc/up")
        ti.type, ti.linkname = tarfile.SYMTYPE, "../../.."
        extra.append(ti)
    else:
        ln = tarfile.TarInfo("lnk")
        ln.type, ln.linkname = tarfile.SYMTYPE, "/tmp"
        ti = tarfile.TarInfo("lnk/planted")
        ti.size = 1
        extra += [ln, ti]
    _tarball(os.path.join(www, "rootfs.tar.xz"), extra)
    with MirrorServer(www) as srv:
        with pytest.raises(SourceError, match="Failed to unpack rootfs.tar.xz: Invalid root filesystem archive"):
            sources.get("rootfs-http")(_rootfs_def(srv.url + "/rootfs.tar.xz"), cache).run(rootfs)
    assert os.listdir(rootfs) == [] and _files(cache) == []
    assert not os.path.exists(os.path.join(tmp, "escaped")) and not os.path.exists("/tmp/planted")


def test_rootfs_http_squashfs(tmp):
    www, cache, rootfs, tree = (os.path.join(tmp, d) for d in ("www", "cache", "rootfs", "tree"))
    for d in (www, rootfs, os.path.join(tree, "etc")):
        os.makedirs(d)
    with open(os.path.join(tree, "etc", "os-release"), "w") as f:
        f.write("ID=squashed\n")
    os.symlink("../../../../outside", os.path.join(tree, "etc", "ok-inside-the-image-not"))
    img = os.path.join(www, "rootfs.squashfs")
    import subprocess
    subprocess.run(["mksquashfs", tree, img, "-quiet", "-no-progress", "-all-root"], check=True)
    with MirrorServer(www) as srv:
        with pytest.raises(SourceError, match="points outside the image"):
            sources.get("rootfs-http")(_rootfs_def(srv.url + "/rootfs.squashfs"), cache).run(rootfs)
        assert os.listdir(rootfs) == []
        os.unlink(os.path.join(tree, "etc", "ok-inside-the-image-not"))
        os.unlink(img)
        subprocess.run(["mksquashfs", tree, img, "-quiet", "-no-progress", "-all-root"], check=True)
        sources.get("rootfs-http")(_rootfs_def(srv.url + "/rootfs.squashfs"), cache).run(rootfs)
    assert open(os.path.join(rootfs, "etc", "os-release")).read() == "ID=squashed\n"
    assert [n for n in os.listdir(tmp) if n.startswith("rootfs-http.")] == []


def test_unknown_downloader_is_refused():
    with pytest.raises(SourceError, match='Unsupported source downloader "nope"'):
        sources.get("nope")
