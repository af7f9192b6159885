"""corral.image.unpack through the store: size budgets (every compression, sparse members, lying
headers, squashfs, packing), truncated streams and tars without end blocks, trailing data."""
import os
import shutil
import subprocess
import tarfile
import time

import pytest

import imagegen
from corral.image import store, unpack
from corral.image.store import ImageError, ImageTooLarge, import_split, import_unified, pack_unified

MIB = 1 << 20
HAVE_ZSTD = shutil.which("zstd") is not None
HAVE_SQUASHFS = shutil.which("mksquashfs") is not None and shutil.which("unsquashfs") is not None
COMPS = ["gz", "xz", "bz2", "none", pytest.param("zst", marks=pytest.mark.skipif(not HAVE_ZSTD, reason="no zstd"))]


def budget(limit):
    return unpack.Budget([(limit, f"the test limit ({unpack.human(limit)})")])


@pytest.fixture
def dirs(tmp_path):
    up, images = tmp_path / "up", tmp_path / "images"
    up.mkdir()
    images.mkdir()
    return up, images


def small_image(end=True, extra=b""):
    return imagegen.flat([*imagegen.image_head(),
                          *imagegen.entry(imagegen.info("rootfs/file", size=len(extra) or 3000),
                                          extra or os.urandom(3000)),
                          *(imagegen.end_blocks() if end else [])])


@pytest.mark.parametrize("comp", COMPS)
def test_bomb_refused_every_compression(dirs, comp):
    up, images = dirs
    path = imagegen.write(up / "bomb", imagegen.zero_bomb(64 * MIB, 4 * MIB), comp)
    b = budget(16 * MIB)
    with pytest.raises(ImageTooLarge, match=r"passes the test limit \(16.00MiB\)"):
        import_unified(str(path), str(images / "fp"), budget=b)
    assert os.listdir(images) == []
    assert b.written <= 16 * MIB and b.streamed <= 20 * MIB   # it stopped there


@pytest.mark.parametrize("comp", COMPS)
def test_image_within_budget_accepted(dirs, comp):
    up, images = dirs
    path = imagegen.write(up / "ok", imagegen.zero_bomb(8 * MIB, 4 * MIB), comp)
    b = budget(16 * MIB)
    import_unified(str(path), str(images / "fp"), budget=b)
    assert (images / "fp" / "rootfs" / "zeros1").stat().st_size == 4 * MIB
    assert 8 * MIB < b.written < 9 * MIB


def test_refusal_is_immediate_and_streaming(dirs):
    """One header announces more than the budget: refused before reading its data. Many files each
    within the budget: refused when the next would pass it, not after reading the whole archive."""
    up, images = dirs
    one = imagegen.write(up / "one.tar.gz", imagegen.zero_bomb(2 << 30))
    start = time.monotonic()
    with pytest.raises(ImageTooLarge):
        import_unified(str(one), str(images / "fp"), budget=budget(64 * MIB))
    assert time.monotonic() - start < 0.5
    many = imagegen.write(up / "many.tar.gz", imagegen.zero_bomb(2 << 30, 1 * MIB))

    class Timed(unpack.Budget):
        def _refuse(self):
            self.refused_at = time.monotonic()
            super()._refuse()
    b = Timed([(64 * MIB, "64MiB")])
    with pytest.raises(ImageTooLarge):
        import_unified(str(many), str(images / "fp"), budget=b)
    cleaned = time.monotonic() - b.refused_at
    assert cleaned < 1.0, f"{cleaned:.3f}s from the refusal to the staging dir being removed"
    assert 63 * MIB <= b.written <= 64 * MIB
    assert os.listdir(images) == []


def test_sparse_member_counts_apparent_size(dirs):
    up, images = dirs
    path = imagegen.write(up / "sparse.tar", imagegen.sparse_bomb(3 << 30), "none")
    assert path.stat().st_size < 10_000
    with pytest.raises(ImageTooLarge):
        import_unified(str(path), str(images / "fp"), budget=budget(100 * MIB))
    assert os.listdir(images) == []
    # within the budget it unpacks, at its apparent size
    small = imagegen.write(up / "sparse2.tar", imagegen.sparse_bomb(2 * MIB), "none")
    import_unified(str(small), str(images / "fp"), budget=budget(100 * MIB))
    assert (images / "fp" / "rootfs" / "hole").stat().st_size == 2 * MIB


def test_lying_size_header(dirs):
    """A header announcing 1 TiB followed by a few bytes: refused by the budget, or as truncated."""
    up, images = dirs
    raw = imagegen.flat([*imagegen.image_head(), imagegen.header(imagegen.info("rootfs/x", size=1 << 40)),
                         b"abc", bytes(509), *imagegen.end_blocks()])
    (up / "lie.tar").write_bytes(raw)
    with pytest.raises(ImageTooLarge):
        import_unified(str(up / "lie.tar"), str(images / "fp"), budget=budget(100 * MIB))
    with pytest.raises(ImageError, match="Invalid image tarball"):
        import_unified(str(up / "lie.tar"), str(images / "fp"))
    assert os.listdir(images) == []


def test_huge_pax_header_refused(dirs):
    up, images = dirs
    ti = imagegen.info("rootfs/x", size=0)
    hdr = imagegen.header(ti)
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 64 * MIB
    raw = imagegen.flat([*imagegen.image_head(), pax.tobuf(tarfile.USTAR_FORMAT), hdr, *imagegen.end_blocks()])
    (up / "pax.tar").write_bytes(raw)
    with pytest.raises(ImageError, match="extended header"):
        import_unified(str(up / "pax.tar"), str(images / "fp"))
    assert os.listdir(images) == []


@pytest.mark.parametrize("comp", COMPS)
def test_tar_without_end_blocks_refused(dirs, comp):
    up, images = dirs
    (up / "i").write_bytes(imagegen.compress_bytes(small_image(end=False), comp))
    with pytest.raises(ImageError, match="end-of-archive"):
        import_unified(str(up / "i"), str(images / "fp"))
    assert os.listdir(images) == []


@pytest.mark.parametrize("comp,cut", [("gz", 8), ("gz", 4), ("gz", 1), ("xz", 1), ("xz", 30),
                                      ("bz2", 1), ("bz2", 10)])
def test_truncated_compressed_stream_refused(dirs, comp, cut):
    up, images = dirs
    data = imagegen.compress_bytes(small_image(), comp)
    (up / "i").write_bytes(data[:-cut])
    with pytest.raises(ImageError, match="Invalid image tarball"):
        import_unified(str(up / "i"), str(images / "fp"))
    assert os.listdir(images) == []


def test_gzip_trailer_crc_checked(dirs):
    up, images = dirs
    data = bytearray(imagegen.compress_bytes(small_image(), "gz"))
    data[-8] ^= 0xFF   # CRC32
    (up / "i").write_bytes(bytes(data))
    with pytest.raises(ImageError, match="Invalid image tarball"):
        import_unified(str(up / "i"), str(images / "fp"))


def test_concatenated_members_and_padding(dirs):
    """pigz/pbzip2-style concatenated members and zero padding are fine; other trailing data is not."""
    up, images = dirs
    raw = small_image()
    half = len(raw) // 2
    for comp in ("gz", "bz2", "xz"):
        data = imagegen.compress_bytes(raw[:half], comp) + imagegen.compress_bytes(raw[half:], comp)
        (up / "i").write_bytes(data + bytes(1000))
        import_unified(str(up / "i"), str(images / comp))
        (up / "i").write_bytes(data + b"garbage")
        with pytest.raises(ImageError, match="trailing data"):
            import_unified(str(up / "i"), str(images / "bad"))
    assert sorted(os.listdir(images)) == ["bz2", "gz", "xz"]


def test_split_images_share_one_budget(dirs):
    up, images = dirs
    meta = imagegen.write(up / "meta.tar", [*imagegen.entry(imagegen.info("metadata.yaml", size=len(
        imagegen.METADATA)), imagegen.METADATA), *imagegen.end_blocks()], "none")
    rootfs = imagegen.write(up / "rootfs.tar.xz", imagegen.zero_bomb(64 * MIB, 4 * MIB, split_rootfs=True), "xz")
    with pytest.raises(ImageTooLarge):
        import_split(str(meta), str(rootfs), str(images / "fp"), budget=budget(16 * MIB))
    assert os.listdir(images) == []
    import_split(str(meta), str(rootfs), str(images / "fp"), budget=budget(65 * MIB))


@pytest.mark.skipif(not HAVE_SQUASHFS, reason="squashfs-tools not installed")
def test_squashfs_listing_budget(dirs, tmp_path):
    up, images = dirs
    src = tmp_path / "sq"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"x" * 1000)
    with open(src / "big", "wb") as f:
        f.truncate(1 << 30)
    sq = tmp_path / "r.squashfs"
    subprocess.run(["mksquashfs", str(src), str(sq), "-quiet", "-no-progress"], check=True, stdout=subprocess.DEVNULL)
    size = unpack.squashfs_size(str(sq), unpack.Budget.unlimited())
    assert (1 << 30) + 1000 < size < (1 << 30) + 1000 + 10 * unpack.ENTRY_COST
    meta = imagegen.write(up / "meta.tar", [*imagegen.entry(imagegen.info("metadata.yaml", size=len(
        imagegen.METADATA)), imagegen.METADATA), *imagegen.end_blocks()], "none")
    start = time.monotonic()
    with pytest.raises(ImageTooLarge):
        import_split(str(meta), str(sq), str(images / "fp"), budget=budget(100 * MIB))
    assert time.monotonic() - start < 2
    assert os.listdir(images) == []


def test_pack_budget(tmp_path):
    """Publishing packs at most the budget: ImageTooLarge, and no partial tarball left."""
    src = tmp_path / "src"
    (src / "rootfs").mkdir(parents=True)
    (src / "metadata.yaml").write_bytes(imagegen.METADATA)
    (src / "rootfs" / "a").write_bytes(bytes(3 * MIB))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ImageTooLarge, match="2.00MiB"):
        pack_unified(str(src), str(out / "img"), "gzip", None, budget(2 * MIB))
    assert os.listdir(out) == []
    pack_unified(str(src), str(out / "img"), "gzip", None, budget(4 * MIB))
    assert os.listdir(out) == ["img"]


def test_budget_for_limits(tmp_path):
    b = unpack.budget_for(None, str(tmp_path), str(tmp_path / "not" / "yet"), "the test disk")
    st = os.statvfs(tmp_path)
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    assert abs(b.limit - max(free - min(total // 20, 1 << 30), 0)) < 64 * MIB  # free space moves a bit
    assert "free space of the test disk" in b.why
    b = unpack.budget_for(10 * MIB, str(tmp_path), str(tmp_path), "x")
    assert b.limit == 10 * MIB and b.why == "images.max_unpacked_size (10.00MiB)"
    b = unpack.budget_for("1%", str(tmp_path), str(tmp_path), "x")
    if total // 100 < free - (1 << 30) - 64 * MIB:   # 1% of the disk is the smaller limit here
        assert b.limit == total // 100 and "1% of the server's disk" in b.why


def test_store_reexports():
    assert store.ImageError is unpack.ImageError and issubclass(ImageTooLarge, ImageError)
