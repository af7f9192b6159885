"""Property-based fuzzing of the image store's validator/unpacker (issue 9, fuzzing point): generated
tar archives with hostile member names (`..`, absolute paths), links pointing anywhere, device nodes,
huge sizes in headers, duplicate names, random metadata.yaml, missing end blocks, every compression,
truncated or corrupted. Whatever comes in: no exception but ImageError; refused input leaves nothing;
accepted input left nothing outside the image directory, no device node and no symlink escaping it.

Bounded and reproducible for CI: derandomized, no example database, a fixed number of examples.
"""
from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile

from hypothesis import HealthCheck, event, given, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import imagegen
from corral.image import store, unpack

# Nothing in the work tree: hypothesis keeps a cache of constants even without an example database.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "corral-hypothesis"))
EXAMPLES = int(os.environ.get("CORRAL_FUZZ_EXAMPLES", "2500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)

COMPS = ["none", "gz", "xz", "bz2"] + (["zst"] if shutil.which("zstd") else [])
VALID_META = imagegen.METADATA

_name_parts = st.sampled_from(["rootfs", "templates", "metadata.yaml", "..", ".", "", "etc", "bin", "a",
                               "x" * 200, "\u00e9", "sp ace", "new\nline", "GNUSparseFile.0"])
_safe = st.lists(st.sampled_from(["etc", "bin", "a", "b", "sp ace", "\u00e9", "x" * 120]), min_size=1,
                 max_size=4).map(lambda p: "rootfs/" + "/".join(p))
names = st.one_of(
    _safe, _safe, _safe,
    st.lists(_name_parts, min_size=1, max_size=5).map("/".join),
    st.lists(_name_parts, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p)),
    st.sampled_from(["rootfs/../../escape", "../escape", "/abs/escape", "rootfs/a/../../../escape",
                     "./rootfs/./a", "rootfs//a", "metadata.yaml", "rootfs", "templates/t.tpl"]),
    st.text(min_size=1, max_size=30).filter(lambda s: "\0" not in s),
)
linknames = st.one_of(
    names, st.sampled_from(["/", "/etc/passwd", "..", "../..", "../../../outside", "rootfs/a",
                            "rootfs/bin", "metadata.yaml", "/proc/self/root", ""]))
KINDS = [tarfile.REGTYPE] * 3 + [tarfile.DIRTYPE] * 2 + [tarfile.SYMTYPE] * 2 + [
    tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, b"Z", b"7"]


@st.composite
def members(draw):
    kind = draw(st.sampled_from(KINDS))
    name = draw(names)
    data = draw(st.binary(max_size=600)) if kind in (tarfile.REGTYPE, tarfile.CONTTYPE) else b""
    ti = imagegen.info(name, kind, size=len(data), mode=draw(st.integers(0, 0o7777)),
                       linkname=draw(linknames) if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else "")
    ti.uid, ti.gid = draw(st.integers(0, 70000)), draw(st.integers(0, 70000))
    ti.mtime = draw(st.integers(0, 2**33))
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        ti.devmajor, ti.devminor = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    lie = draw(st.sampled_from([None] * 12 + [0, 1, 511, 1 << 20, 1 << 40, (1 << 63) - 1]))
    if lie is not None:   # the header's size says something else than the data that follows
        ti.size = lie
    try:
        head = imagegen.header(ti)
    except (ValueError, OverflowError, UnicodeError):
        head = imagegen.header(imagegen.info("rootfs/fallback", size=len(data)))
        ti.size = len(data)
    return head + data + bytes(-len(data) % 512)


metadata = st.one_of(
    st.just(VALID_META), st.just(VALID_META), st.just(VALID_META),
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"architecture: amd64\ncreation_date: -1\n", b"architecture: [a]\n", b"{{{{",
                     b"architecture: x86_64\ncreation_date: 99999999999999999999\n",
                     b"architecture: x86_64\ncreation_date: 1\ntemplates: {/etc/a: {template: ../../x}}\n",
                     b"&a [*a, *a, *a]", b"!!python/object:os.system ls"]),
)


@st.composite
def archives(draw, part="unified"):
    """A unified image tarball, or a split image's "meta" or "rootfs" tarball."""
    meta = draw(metadata)
    parts = []
    if part != "rootfs" and draw(st.integers(0, 9)) > 0:
        parts.append(imagegen.flat(imagegen.entry(imagegen.info("metadata.yaml", size=len(meta)), meta)))
    if part == "unified" and draw(st.integers(0, 9)) > 0:
        parts.append(imagegen.header(imagegen.info("rootfs", tarfile.DIRTYPE, mode=0o755)))
    entries = draw(st.lists(members(), max_size=8 if part != "meta" else 2))
    if part == "rootfs":  # a rootfs tarball's paths are relative to the rootfs (mostly)
        entries = [e.replace(b"rootfs/", b"", 1) if draw(st.integers(0, 3)) else e for e in entries]
    parts += entries
    if draw(st.booleans()):   # duplicate a member
        if parts:
            parts.append(parts[draw(st.integers(0, len(parts) - 1))])
    parts.append(draw(st.sampled_from([bytes(1024)] * 4 + [bytes(512), b"", bytes(10240)])))
    raw = draw(st.permutations(parts)) if draw(st.integers(0, 9)) == 0 else parts
    data = imagegen.compress_bytes(b"".join(raw), draw(st.sampled_from(COMPS)))
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "flip", "append"]))
    if damage == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    elif damage == "append":
        data += draw(st.binary(min_size=1, max_size=64))
    return data


def check_result(root: str, dest: str, accepted: bool) -> None:
    images = os.path.join(root, "images")
    outside = os.path.join(root, "outside")
    assert os.listdir(outside) == [], "something was written outside the image"
    assert sorted(os.listdir(root)) == ["images", "outside", "up"]
    assert not os.path.lexists("/abs/escape")
    if not accepted:
        assert os.listdir(images) == [], "a refused image left something behind"
        return
    assert os.listdir(images) == [os.path.basename(dest)]
    real_dest = os.path.realpath(dest)
    for dirpath, dirnames, filenames in os.walk(dest):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st_ = os.lstat(p)
            assert not (stat.S_ISCHR(st_.st_mode) or stat.S_ISBLK(st_.st_mode)), f"device node {p}"
            assert os.path.realpath(os.path.dirname(p)).startswith(real_dest), p
            if stat.S_ISLNK(st_.st_mode):
                target = os.readlink(p)
                rel = os.path.relpath(p, dest).split(os.sep)
                if target.startswith("/"):
                    assert rel[0] == "rootfs", f"absolute symlink outside rootfs: {p} -> {target}"
                else:
                    base = os.path.join(dest, "rootfs") if rel[0] == "rootfs" else dest
                    resolved = os.path.normpath(os.path.join(os.path.dirname(p), target))
                    assert resolved == base or resolved.startswith(base + os.sep), f"{p} -> {target}"


def _env():
    root = tempfile.mkdtemp(prefix="corral-fuzz-", dir="/var/tmp")
    for sub in ("up", "images", "outside"):
        os.mkdir(os.path.join(root, sub))
    # a symlink in the upload dir pointing outside: nothing may go through it
    os.symlink(os.path.join(root, "outside"), os.path.join(root, "up", "link"))
    return root


@FUZZ
@given(data=archives())
def test_fuzz_unified_tarballs(data):
    root = _env()
    try:
        path = os.path.join(root, "up", "image")
        with open(path, "wb") as f:
            f.write(data)
        dest = os.path.join(root, "images", "fp")
        try:
            store.import_unified(path, dest, budget=unpack.Budget([(4 << 20, "4MiB")]))
        except store.ImageError as e:
            event(f"refused: {str(e).split(':')[0]}")
            check_result(root, dest, False)
        else:
            event("accepted")
            check_result(root, dest, True)
    finally:
        store._rmtree(root)


@settings(FUZZ, max_examples=max(EXAMPLES // 5, 50))
@given(meta=archives("meta"), rootfs=archives("rootfs"))
def test_fuzz_split_tarballs(meta, rootfs):
    root = _env()
    try:
        paths = []
        for name, data in (("meta", meta), ("rootfs", rootfs)):
            paths.append(os.path.join(root, "up", name))
            with open(paths[-1], "wb") as f:
                f.write(data)
        dest = os.path.join(root, "images", "fp")
        try:
            store.import_split(paths[0], paths[1], dest, budget=unpack.Budget([(4 << 20, "4MiB")]))
        except store.ImageError as e:
            event(f"refused: {str(e).split(':')[0]}")
            check_result(root, dest, False)
        else:
            event("accepted")
            check_result(root, dest, True)
    finally:
        store._rmtree(root)
