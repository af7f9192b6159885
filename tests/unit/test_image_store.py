"""corral.image.store: import (unified/split, every compression), validation of hostile
archives (nothing written outside, nothing left behind), metadata parsing and packing."""
import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from corral.image.store import (
    ImageError, ImageInfo, detect_format, fingerprint, import_split, import_unified,
    pack_unified, parse_metadata,
)

HAVE_ZSTD = shutil.which("zstd") is not None
HAVE_MKSQUASHFS = shutil.which("mksquashfs") is not None and shutil.which("unsquashfs") is not None
IS_ROOT = os.geteuid() == 0

METADATA = b"""\
architecture: amd64
creation_date: 1763729999
properties:
  description: test image
  os: busybox
  release: 1.10
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
    properties:
      default: "x"
"""
MTIME = 1700000000


def ent(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, linkname="", dev=(0, 0)):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = MTIME
    info.linkname = linkname
    info.devmajor, info.devminor = dev
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def d(name, mode=0o755, **kw):
    return ent(name, tarfile.DIRTYPE, mode=mode, **kw)


def f(name, data=b"", **kw):
    return ent(name, tarfile.REGTYPE, data=data, **kw)


def sym(name, target):
    return ent(name, tarfile.SYMTYPE, mode=0o777, linkname=target)


def write_tar(path, entries, comp="gz"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    raw = buf.getvalue()
    if comp == "gz":
        raw = gzip.compress(raw)
    elif comp == "xz":
        import lzma
        raw = lzma.compress(raw)
    elif comp == "bz2":
        import bz2
        raw = bz2.compress(raw)
    elif comp == "zst":
        raw = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout
    path.write_bytes(raw)
    return path


def rootfs_entries(prefix="rootfs/"):
    return [
        d(prefix + "bin"),
        f(prefix + "bin/busybox", b"\x7fELF fake busybox", mode=0o4755),
        sym(prefix + "bin/sh", "/bin/busybox"),
        sym(prefix + "bin/ls", "busybox"),
        ent(prefix + "bin/cat", tarfile.LNKTYPE, linkname=prefix + "bin/busybox", mode=0o4755),
        d(prefix + "home"),
        d(prefix + "home/user", mode=0o700, uid=1000, gid=1000),
        f(prefix + "home/user/.profile", b"export PS1='$ '\n", mode=0o600, uid=1000, gid=1000),
        d(prefix + "ro", mode=0o555),
        f(prefix + "ro/file", b"read only dir content"),
        ent(prefix + "run-fifo", tarfile.FIFOTYPE, mode=0o600),
        f(prefix + "etc/implicit/parent.conf", b"no dir entries before me"),
    ]


def unified_entries(metadata=METADATA):
    return [
        f("metadata.yaml", metadata),
        d("templates"),
        f("templates/hostname.tpl", b"{{ container.name }}\n"),
        d("rootfs"),
        *rootfs_entries(),
    ]


@pytest.fixture
def env(tmp_path):
    up = tmp_path / "upload"
    up.mkdir()
    images = tmp_path / "images"
    images.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    return up, images, outside


def assert_clean(images, outside=None):
    assert os.listdir(images) == [], "dest or a temp dir was left behind"
    if outside is not None:
        assert os.listdir(outside) == [], "something was written outside the image"


def check_rootfs(rootfs):
    busybox = rootfs / "bin/busybox"
    assert busybox.read_bytes() == b"\x7fELF fake busybox"
    st = busybox.lstat()
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert os.readlink(rootfs / "bin/sh") == "/bin/busybox"
    assert os.readlink(rootfs / "bin/ls") == "busybox"
    assert (rootfs / "bin/cat").lstat().st_ino == st.st_ino
    assert stat.S_IMODE((rootfs / "ro").stat().st_mode) == 0o555
    assert (rootfs / "ro/file").read_bytes() == b"read only dir content"
    assert stat.S_ISFIFO((rootfs / "run-fifo").lstat().st_mode)
    assert (rootfs / "etc/implicit/parent.conf").read_bytes() == b"no dir entries before me"
    assert stat.S_IMODE((rootfs / "etc").stat().st_mode) == 0o755
    assert busybox.stat().st_mtime == MTIME
    profile = (rootfs / "home/user/.profile").lstat()
    assert stat.S_IMODE(profile.st_mode) == 0o600
    if IS_ROOT:
        assert (profile.st_uid, profile.st_gid) == (1000, 1000)
        assert (rootfs / "home/user").stat().st_uid == 1000


# --------------------------------------------------------------------------- good images

COMPRESSIONS = ["none", "gz", "xz", "bz2", pytest.param("zst", marks=pytest.mark.skipif(
    not HAVE_ZSTD, reason="zstd not installed"))]


@pytest.mark.parametrize("comp", COMPRESSIONS)
def test_import_unified(env, comp):
    up, images, _ = env
    # The name lies about the format: detection is by magic bytes.
    tarball = write_tar(up / "upload.bin", unified_entries(), comp)
    dest = images / "abc"
    info = import_unified(str(tarball), str(dest), filename="busybox.tar.gz")

    data = tarball.read_bytes()
    assert isinstance(info, ImageInfo)
    assert info.fingerprint == hashlib.sha256(data).hexdigest()
    assert info.fingerprint == fingerprint([str(tarball)])
    assert info.size == len(data)
    assert info.architecture == "x86_64"
    assert info.created_at == "2025-11-21T12:59:59Z"
    assert info.expires_at == "1970-01-01T00:00:00Z"
    assert info.properties == {"description": "test image", "os": "busybox", "release": "1.10"}
    assert info.templates == {"/etc/hostname": {
        "when": ["create", "copy"], "create_only": False, "template": "hostname.tpl",
        "properties": {"default": "x"}}}
    assert info.filename == "busybox.tar.gz"
    assert info.type == "container"

    assert sorted(os.listdir(images)) == ["abc"]
    assert (dest / "metadata.yaml").read_bytes() == METADATA
    assert (dest / "templates/hostname.tpl").read_text() == "{{ container.name }}\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    check_rootfs(dest / "rootfs")


def test_detect_format(env):
    up, _, _ = env
    assert detect_format(str(write_tar(up / "a.tar.xz", [f("x")], "gz"))) == "gzip"
    assert detect_format(str(write_tar(up / "b.tar.gz", [f("x")], "xz"))) == "xz"
    assert detect_format(str(write_tar(up / "c", [f("x")], "none"))) == "tar"


def test_import_split_tarball(env):
    up, images, _ = env
    meta = write_tar(up / "meta.tar.xz", [f("metadata.yaml", METADATA), f("templates/hostname.tpl", b"x")], "xz")
    root = write_tar(up / "rootfs.tar.gz", [d("./", mode=0o711), *rootfs_entries(prefix="./")], "gz")
    dest = images / "split"
    info = import_split(str(meta), str(root), str(dest))
    both = meta.read_bytes() + root.read_bytes()
    assert info.fingerprint == hashlib.sha256(both).hexdigest()
    assert info.fingerprint == fingerprint([str(meta), str(root)])
    assert info.size == len(both)
    assert info.filename == ""
    check_rootfs(dest / "rootfs")
    assert stat.S_IMODE((dest / "rootfs").stat().st_mode) == 0o711
    assert (dest / "templates/hostname.tpl").read_bytes() == b"x"


def make_squashfs(src, out):
    subprocess.run(["mksquashfs", str(src), str(out), "-noappend", "-quiet", "-no-progress"],
                   check=True, capture_output=True)
    return out


@pytest.mark.skipif(not HAVE_MKSQUASHFS, reason="squashfs-tools not installed")
def test_import_split_squashfs(env, tmp_path):
    up, images, _ = env
    src = tmp_path / "sqsrc"
    (src / "bin").mkdir(parents=True)
    (src / "bin/busybox").write_bytes(b"bb")
    os.symlink("/bin/busybox", src / "bin/sh")
    (src / "home").mkdir()
    (src / "home/file").write_text("owned")
    if IS_ROOT:
        os.chown(src / "home/file", 1234, 4321)
    sq = make_squashfs(src, up / "rootfs.img")
    meta = write_tar(up / "meta.tar", [f("metadata.yaml", METADATA)], "none")
    dest = images / "sq"
    info = import_split(str(meta), str(sq), str(dest))
    assert info.fingerprint == hashlib.sha256(meta.read_bytes() + sq.read_bytes()).hexdigest()
    assert (dest / "rootfs/bin/busybox").read_bytes() == b"bb"
    assert os.readlink(dest / "rootfs/bin/sh") == "/bin/busybox"
    if IS_ROOT:
        st = (dest / "rootfs/home/file").stat()
        assert (st.st_uid, st.st_gid) == (1234, 4321)


@pytest.mark.skipif(not HAVE_MKSQUASHFS, reason="squashfs-tools not installed")
@pytest.mark.parametrize("bad", ["escape_symlink", "device"])
def test_import_split_squashfs_rejects(env, tmp_path, bad):
    up, images, outside = env
    src = tmp_path / "sqsrc"
    src.mkdir()
    if bad == "escape_symlink":
        os.symlink("../../../..", src / "evil")
    else:
        if not IS_ROOT:
            pytest.skip("needs root for mknod")
        os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    sq = make_squashfs(src, up / "rootfs.img")
    meta = write_tar(up / "meta.tar", [f("metadata.yaml", METADATA)], "none")
    with pytest.raises(ImageError):
        import_split(str(meta), str(sq), str(images / "x"))
    assert_clean(images, outside)
    # a metadata tarball with rootfs/ entries is not merged with a squashfs rootfs
    (tmp_path / "empty").mkdir()
    meta2 = write_tar(up / "meta2.tar", [f("metadata.yaml", METADATA), f("rootfs/etc/inittab", b"\n")], "none")
    with pytest.raises(ImageError, match="squashfs"):
        import_split(str(meta2), str(make_squashfs(tmp_path / "empty", up / "ok.img")), str(images / "x"))
    assert_clean(images, outside)
    if bad == "device":
        import_split(str(meta), str(sq), str(images / "x"), allow_devices=True)
        assert stat.S_ISCHR((images / "x/rootfs/null").lstat().st_mode)


@pytest.mark.skipif(not IS_ROOT, reason="needs root for mknod")
def test_device_nodes_only_when_allowed(env):
    up, images, _ = env
    tarball = write_tar(up / "i.tar", [*unified_entries(), ent(
        "rootfs/dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3))], "none")
    with pytest.raises(ImageError, match="device node"):
        import_unified(str(tarball), str(images / "x"))
    assert_clean(images)
    import_unified(str(tarball), str(images / "x"), allow_devices=True)
    st = (images / "x/rootfs/dev/null").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


def test_symlink_replaced_by_file_is_not_written_through(env):
    """A later regular entry at a symlink's path replaces the symlink, never writes through it."""
    up, images, outside = env
    target = outside / "victim"
    tarball = write_tar(up / "i.tar", [*unified_entries(), sym("rootfs/x", str(target)),
                                       f("rootfs/x", b"payload")], "gz")
    import_unified(str(tarball), str(images / "x"))
    assert not target.exists()
    assert (images / "x/rootfs/x").read_bytes() == b"payload"
    assert os.listdir(outside) == []


def test_empty_dest_dir_is_replaced(env):
    up, images, _ = env
    (images / "x").mkdir()
    import_unified(str(write_tar(up / "i.tar", unified_entries(), "gz")), str(images / "x"))
    assert (images / "x/metadata.yaml").exists()


# --------------------------------------------------------------------------- hostile/broken images

def bad_unified(outside):
    return {
        "dotdot": [*unified_entries(), f("../escape", b"x")],
        "dotdot_inside": [*unified_entries(), f("rootfs/../../escape", b"x")],
        "absolute_dotdot": [*unified_entries(), f("/../abs", b"x")],
        "root_as_file": [*unified_entries(), f("/", b"x")],
        "symlink_escape_via_leading_slash": [*unified_entries(), sym("/rootfs/evil", "../../.."),
                                             f("rootfs/evil/x", b"x")],
        "symlink_escape": [*unified_entries(), sym("rootfs/evil", "../../.."), f("rootfs/evil/x", b"x")],
        "through_abs_symlink": [*unified_entries(), sym("rootfs/evil", str(outside)),
                                f("rootfs/evil/pwned", b"x")],
        "through_rel_symlink": [*unified_entries(), sym("rootfs/lnk", "bin"), f("rootfs/lnk/x", b"x")],
        "abs_symlink_outside_rootfs": [*unified_entries(), sym("templates/t", "/etc/shadow")],
        "hardlink_dotdot": [*unified_entries(), ent("rootfs/h", tarfile.LNKTYPE, linkname="../../etc/passwd")],
        "hardlink_abs": [*unified_entries(), ent("rootfs/h", tarfile.LNKTYPE, linkname="/etc/passwd")],
        "hardlink_missing": [*unified_entries(), ent("rootfs/h", tarfile.LNKTYPE, linkname="rootfs/nope")],
        "device_unprivileged": [*unified_entries(), ent("rootfs/dev/sda", tarfile.BLKTYPE, dev=(8, 0))],
        "file_replaces_dir": [*unified_entries(), f("rootfs/bin", b"x")],
        "missing_metadata": [e for e in unified_entries() if e[0].name != "metadata.yaml"],
        "metadata_list": unified_entries(b"- architecture: x86_64\n- creation_date: 1\n"),
        "metadata_bad_yaml": unified_entries(b"architecture: [x86_64\ncreation_date: :\n"),
        "metadata_no_arch": unified_entries(b"creation_date: 1\n"),
        "metadata_no_date": unified_entries(b"architecture: x86_64\n"),
        "metadata_bad_arch": unified_entries(b"architecture: z80\ncreation_date: 1\n"),
        "metadata_bad_date": unified_entries(b"architecture: x86_64\ncreation_date: yesterday\n"),
        "metadata_symlink": [sym("metadata.yaml", "rootfs/etc/meta"), d("rootfs"),
                             f("rootfs/etc/meta", METADATA)],
        "metadata_bad_templates": unified_entries(METADATA + b"  /x:\n    template: ../../etc/shadow\n"),
        "missing_rootfs": [f("metadata.yaml", METADATA)],
        "rootfs_is_file": [f("metadata.yaml", METADATA), f("rootfs", b"x")],
    }


BAD_CASES = list(bad_unified("/x"))


@pytest.mark.parametrize("case", BAD_CASES)
def test_import_unified_rejects(env, case):
    up, images, outside = env
    tarball = write_tar(up / "bad.tar.gz", bad_unified(outside)[case], "gz")
    with pytest.raises(ImageError):
        import_unified(str(tarball), str(images / "fp"))
    assert_clean(images, outside)
    assert not (up.parent / "escape").exists() and not os.path.exists("/abs")


def test_truncated_gzip(env):
    up, images, outside = env
    good = write_tar(up / "good.tar.gz", unified_entries() + [f("rootfs/big", os.urandom(200_000))], "gz")
    bad = up / "bad.tar.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageError, match="Invalid image tarball"):
        import_unified(str(bad), str(images / "fp"))
    assert_clean(images, outside)


def test_truncated_plain_tar(env):
    up, images, _ = env
    good = write_tar(up / "good.tar", unified_entries() + [f("rootfs/big", os.urandom(200_000))], "none")
    bad = up / "bad.tar"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size - 150_000])
    with pytest.raises(ImageError, match="Invalid image tarball"):
        import_unified(str(bad), str(images / "fp"))
    assert_clean(images)


@pytest.mark.parametrize("payload", [b"", b"this is not a tarball at all" * 40,
                                     b"\x1f\x8b garbage", b"\x28\xb5\x2f\xfd garbage zstd"])
def test_garbage(env, payload):
    up, images, _ = env
    if payload.startswith(b"\x28\xb5") and not HAVE_ZSTD:
        pytest.skip("zstd not installed")
    bad = up / "bad"
    bad.write_bytes(payload)
    with pytest.raises(ImageError):
        import_unified(str(bad), str(images / "fp"))
    assert_clean(images)


def test_leading_slash_is_dropped_like_gnu_tar(env):
    """pylxd's and LXD's test images name a member `/rootfs/etc/inittab`: GNU tar (and LXD) drop
    the leading `/`; so does the unpacker, for entries and hardlink targets, inside the image only."""
    up, images, outside = env
    tarball = write_tar(up / "i.tar", [*unified_entries(), f("/rootfs/etc/inittab", b"\n"), f("//abs", b"x"),
                                       ent("/rootfs/bin/cat2", tarfile.LNKTYPE, linkname="/rootfs/bin/busybox")],
                        "none")
    import_unified(str(tarball), str(images / "x"))
    assert (images / "x/rootfs/etc/inittab").read_bytes() == b"\n"
    assert (images / "x/abs").read_bytes() == b"x"
    assert (images / "x/rootfs/bin/cat2").stat().st_ino == (images / "x/rootfs/bin/busybox").stat().st_ino
    check_rootfs(images / "x/rootfs")
    assert not os.path.exists("/abs") and os.listdir(outside) == []
    # a split rootfs tarball's `/bin/x` lands in rootfs/bin/x
    meta = write_tar(up / "meta.tar", [f("metadata.yaml", METADATA)], "none")
    root = write_tar(up / "rootfs.tar", [f("/bin/x", b"y"), *rootfs_entries(prefix="")], "none")
    import_split(str(meta), str(root), str(images / "y"))
    assert (images / "y/rootfs/bin/x").read_bytes() == b"y"


def test_split_metadata_tarball_with_rootfs_entries(env):
    """LXD unpacks the metadata tarball, rootfs/ entries too, then the rootfs tarball over it
    (LXD's import-busybox --split puts `/rootfs/etc/inittab` in the metadata tarball)."""
    up, images, outside = env
    meta = write_tar(up / "meta.tar", [f("metadata.yaml", METADATA), f("/rootfs/etc/inittab", b"\n"),
                                       f("rootfs/bin/busybox", b"from the metadata tarball")], "none")
    root = write_tar(up / "rootfs.tar", rootfs_entries(prefix=""), "xz")
    import_split(str(meta), str(root), str(images / "fp"))
    assert (images / "fp/rootfs/etc/inittab").read_bytes() == b"\n"
    check_rootfs(images / "fp/rootfs")   # the rootfs tarball's busybox replaced the metadata one
    assert os.listdir(outside) == []


def test_split_rejects(env):
    up, images, outside = env
    root = write_tar(up / "rootfs.tar", rootfs_entries(prefix=""), "none")
    # The metadata tarball's rootfs entries follow the same rules; a symlink it plants is never
    # written through by the rootfs tarball.
    for meta_entries, root_entries in (
            ([f("rootfs", b"x")], rootfs_entries(prefix="")),
            ([sym("rootfs", str(outside))], rootfs_entries(prefix="")),
            ([sym("rootfs/etc", str(outside))], [f("etc/passwd", b"x")]),
            ([sym("rootfs/etc", "../..")], [f("x", b"x")]),
            ([f("rootfs/../../x", b"x")], [f("x", b"x")])):
        meta = write_tar(up / "meta.tar", [f("metadata.yaml", METADATA), *meta_entries], "none")
        root = write_tar(up / "rootfs.tar", root_entries, "none")
        with pytest.raises(ImageError):
            import_split(str(meta), str(root), str(images / "fp"))
        assert_clean(images, outside)
    # Escapes in the rootfs tarball are judged against the rootfs.
    meta = write_tar(up / "meta.tar", [f("metadata.yaml", METADATA)], "none")
    for entries in ([sym("evil", "../.."), f("evil/x", b"x")], [f("../x", b"x")],
                    [sym("evil", str(outside)), f("evil/x", b"x")]):
        root = write_tar(up / "rootfs.tar", entries, "gz")
        with pytest.raises(ImageError):
            import_split(str(meta), str(root), str(images / "fp"))
        assert_clean(images, outside)


def test_dest_exists(env):
    up, images, _ = env
    (images / "fp").mkdir()
    (images / "fp/keep").write_text("mine")
    with pytest.raises(ImageError, match="already exists"):
        import_unified(str(write_tar(up / "i.tar", unified_entries(), "gz")), str(images / "fp"))
    assert os.listdir(images) == ["fp"]
    assert os.listdir(images / "fp") == ["keep"]


# --------------------------------------------------------------------------- metadata

def test_parse_metadata():
    meta = parse_metadata(METADATA)
    assert meta["architecture"] == "x86_64"
    assert meta["creation_date"] == 1763729999
    assert meta["expiry_date"] == 0
    assert meta["properties"]["release"] == "1.10"
    assert meta["templates"]["/etc/hostname"]["create_only"] is False
    assert parse_metadata("architecture: aarch64\ncreation_date: 5\n")["properties"] == {}
    assert parse_metadata("templates: {}", strict=False) == {"properties": {}, "templates": {}}
    for bad in ["[]", "- a", "just a string", "architecture: x86_64", "{", "creation_date: 1",
                "architecture: x86_64\ncreation_date: -1\n",
                "architecture: x86_64\ncreation_date: 1\nproperties: [a]\n",
                "architecture: x86_64\ncreation_date: 1\ntemplates:\n  /a:\n    template: t\n    when: create\n",
                "architecture: x86_64\ncreation_date: 1\ntemplates:\n  /a:\n    template: /etc/passwd\n"]:
        with pytest.raises(ImageError):
            parse_metadata(bad)


# --------------------------------------------------------------------------- packing

@pytest.mark.parametrize("compression", ["gzip", "xz", "none", pytest.param("zstd", marks=pytest.mark.skipif(
    not HAVE_ZSTD, reason="zstd not installed"))])
def test_pack_roundtrip(env, tmp_path, compression):
    up, images, _ = env
    src = images / "src"
    import_unified(str(write_tar(up / "i.tar.gz", unified_entries(), "gz")), str(src))
    calls = []
    out = tmp_path / "exports" / "image.tar"
    out.parent.mkdir()
    path, fp, size = pack_unified(str(src), str(out), compression, progress=calls.append)
    assert path == str(out)
    assert fp == hashlib.sha256(out.read_bytes()).hexdigest()
    assert size == out.stat().st_size
    assert os.listdir(out.parent) == ["image.tar"]
    assert calls and calls[-1] == sum(
        os.lstat(os.path.join(dp, n)).st_size
        for dp, _, names in os.walk(src) for n in names
        if stat.S_ISREG(os.lstat(os.path.join(dp, n)).st_mode)
        and n != "cat")  # hardlinked copy is stored once
    with tarfile.open(out) if compression != "zstd" else tarfile.open(fileobj=io.BytesIO(subprocess.run(
            ["zstd", "-dc", str(out)], capture_output=True, check=True).stdout)) as tar:
        names = tar.getnames()
        assert names[0] == "metadata.yaml" and "rootfs/bin/busybox" in names
        assert all(m.uname == "" for m in tar.getmembers())
    again = images / "again"
    info = import_unified(str(out), str(again))
    assert info.fingerprint == fp
    check_rootfs(again / "rootfs")


def test_pack_rejects(env, tmp_path):
    _, images, _ = env
    with pytest.raises(ImageError):
        pack_unified(str(images), str(tmp_path / "x.tar"))
    (images / "metadata.yaml").write_bytes(METADATA)
    (images / "rootfs").mkdir()
    with pytest.raises(ImageError):
        pack_unified(str(images), str(tmp_path / "x.tar"), compression="lz4")
    assert not (tmp_path / "x.tar").exists()


@pytest.mark.skipif(not HAVE_ZSTD, reason="zstd not installed")
def test_zstd_hostile_entry_rejected(env):
    up, images, outside = env
    entries = [*unified_entries(), f("../escape", b"x"), f("rootfs/big", os.urandom(3_000_000))]
    with pytest.raises(ImageError, match=r"'\.\.'"):
        import_unified(str(write_tar(up / "bad.tar.zst", entries, "zst")), str(images / "fp"))
    assert_clean(images, outside)


@pytest.mark.timeout(60)
def test_slash_member_with_lying_size_is_refused_at_once(env):
    """A member named `/` (the image directory once the slash is dropped) announcing 2**63 bytes:
    refused before tarfile would skip its data (found by the fuzzer: it looped on the empty stream)."""
    import imagegen
    up, images, outside = env
    raw = b"".join([*imagegen.entry(imagegen.info("metadata.yaml", size=len(METADATA)), METADATA),
                    imagegen.header(imagegen.info("rootfs", tarfile.DIRTYPE, mode=0o755)),
                    imagegen.header(imagegen.info("/", tarfile.CONTTYPE, size=(1 << 63) - 1)), bytes(1024)])
    (up / "lie.tar").write_bytes(raw)
    with pytest.raises(ImageError, match="names the image directory"):
        import_unified(str(up / "lie.tar"), str(images / "fp"))
    assert_clean(images, outside)
