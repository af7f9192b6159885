"""corral/storage/transfer.py: an instance volume's tree as a tar stream between members, and back
into an empty directory, with owners, modes, links, special files and extended attributes; cut or
crafted streams refused."""
from __future__ import annotations

import asyncio
import io
import os
import shutil
import stat
import tarfile
import tempfile

import pytest

from corral.storage import transfer

ROOT = os.geteuid() == 0


@pytest.fixture
def dirs():
    base = tempfile.mkdtemp(prefix="corral-transfer-", dir="/var/tmp")
    src, dst = os.path.join(base, "src"), os.path.join(base, "dst")
    os.mkdir(src)
    os.mkdir(dst)
    try:
        yield src, dst
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _tree(src: str) -> None:
    os.makedirs(os.path.join(src, "rootfs/bin"))
    os.makedirs(os.path.join(src, "rootfs/etc/empty"))
    os.makedirs(os.path.join(src, "templates"))
    with open(os.path.join(src, "metadata.yaml"), "w") as f:
        f.write("architecture: x86_64\n")
    big = os.path.join(src, "rootfs/bin/busybox")
    with open(big, "wb") as f:
        f.write(os.urandom(3 << 20))   # more than one buffer
    os.chmod(big, 0o4755)
    os.link(big, os.path.join(src, "rootfs/bin/sh"))
    os.symlink("busybox", os.path.join(src, "rootfs/bin/ls"))
    os.symlink("/etc/hostname", os.path.join(src, "rootfs/etc/dangling"))   # absolute, inside the container
    os.mkfifo(os.path.join(src, "rootfs/etc/fifo"))
    with open(os.path.join(src, "rootfs/etc/hostname"), "w") as f:
        f.write("c1\n")
    os.chmod(os.path.join(src, "rootfs/etc/hostname"), 0o600)
    os.chmod(os.path.join(src, "rootfs/etc/empty"), 0o500)   # read-only directory, still filled in order
    os.setxattr(os.path.join(src, "rootfs/etc/hostname"), "user.corral", b"\x00\xffbinary")
    if ROOT:
        os.mknod(os.path.join(src, "rootfs/etc/null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.lchown(os.path.join(src, "rootfs/etc/hostname"), 1000123, 1000456)
        os.setxattr(big, "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))


def _describe(top: str) -> dict:
    out = {}
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, top)
            entry = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink,
                     "xattrs": sorted((a, os.getxattr(p, a, follow_symlinks=False))
                                      for a in os.listxattr(p, follow_symlinks=False))}
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    entry["data"] = f.read()
                entry["mtime"] = int(st.st_mtime)
            elif stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode):
                entry["rdev"] = st.st_rdev
            out[rel] = entry
    return out


def _stream(src: str) -> bytes:
    buf = io.BytesIO()
    transfer.write_tree(src, buf)
    return buf.getvalue()


def test_a_tree_arrives_as_it_was(dirs):
    src, dst = dirs
    _tree(src)
    data = _stream(src)
    n = transfer.extract_tree(io.BytesIO(data), dst)
    assert n == len(_describe(src))
    assert _describe(dst) == _describe(src)
    assert os.stat(os.path.join(dst, "rootfs/bin/sh")).st_ino == os.stat(os.path.join(dst, "rootfs/bin/busybox")).st_ino
    assert stat.S_IMODE(os.stat(os.path.join(dst, "rootfs/bin/busybox")).st_mode) == 0o4755


@pytest.mark.parametrize("cut", [0.5, "boundary"])
def test_a_cut_stream_is_refused(dirs, cut):
    src, dst = dirs
    _tree(src)
    data = _stream(src)
    if cut == "boundary":   # the whole archive but its END member: looks complete to tar itself
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
            keep = io.BytesIO()
            with tarfile.open(fileobj=keep, mode="w|", format=tarfile.PAX_FORMAT) as out:
                for ti in tf:
                    if ti.name != transfer.END:
                        out.addfile(ti, tf.extractfile(ti) if ti.isreg() else None)
        data = keep.getvalue()
    else:
        data = data[:int(len(data) * cut)]
    with pytest.raises(transfer.TransferError):
        transfer.extract_tree(io.BytesIO(data), dst)


def _crafted(*members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, extra in members:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            if kind == tarfile.SYMTYPE or kind == tarfile.LNKTYPE:
                ti.linkname = extra
                tf.addfile(ti)
            elif kind == tarfile.DIRTYPE:
                ti.mode = 0o755
                tf.addfile(ti)
            else:
                ti.size = len(extra)
                tf.addfile(ti, io.BytesIO(extra))
        end = tarfile.TarInfo(transfer.END)
        tf.addfile(end, io.BytesIO(b""))
    return buf.getvalue()


@pytest.mark.parametrize("members", [
    [("/etc/passwd", tarfile.REGTYPE, b"x")],
    [("../escape", tarfile.REGTYPE, b"x")],
    [("a/../../escape", tarfile.REGTYPE, b"x")],
    [("etc", tarfile.SYMTYPE, "/etc"), ("etc/passwd", tarfile.REGTYPE, b"x")],
    [("f", tarfile.REGTYPE, b"x"), ("f", tarfile.REGTYPE, b"y")],
    [("link", tarfile.LNKTYPE, "/etc/shadow")],
    [("f", tarfile.REGTYPE, b"x"), ("f/g", tarfile.REGTYPE, b"y")],
])
def test_crafted_streams_are_refused_and_write_nothing_outside(dirs, members):
    src, dst = dirs
    outside = os.path.join(os.path.dirname(dst), "escape")
    with pytest.raises(transfer.TransferError):
        transfer.extract_tree(io.BytesIO(_crafted(*members)), dst)
    assert not os.path.exists(outside)


def test_bridges_carry_a_stream_between_threads_and_the_loop(dirs):
    """What the HTTP endpoint and the receiver do: a worker thread writes through BridgeWriter to a
    coroutine, another reads through BridgeReader from one."""
    src, dst = dirs
    _tree(src)

    async def go():
        loop = asyncio.get_running_loop()
        pipe: asyncio.Queue = asyncio.Queue(maxsize=4)

        async def put(data: bytes) -> None:
            await pipe.put(data)

        pending = bytearray()

        async def read(n: int) -> bytes:
            while not pending:
                chunk = await pipe.get()
                if chunk is None:
                    return b""
                pending.extend(chunk)
            out = bytes(pending[:n])
            del pending[:n]
            return out

        out = transfer.buffered_writer(loop, put)

        def send():
            transfer.write_tree(src, out)
            out.flush()

        async def sender():
            try:
                await asyncio.to_thread(send)
            finally:
                out.raw.abandon()
                await pipe.put(None)

        reader = transfer.buffered_reader(loop, read)
        results = await asyncio.gather(sender(), asyncio.to_thread(transfer.extract_tree, reader, dst))
        return results[1], reader.raw.received

    n, received = asyncio.run(go())
    assert n == len(_describe(src)) and received > 3 << 20
    assert _describe(dst) == _describe(src)


def test_an_abandoned_writer_never_waits_on_the_loop():
    sent = []

    async def write(data: bytes) -> None:
        sent.append(data)

    async def go():
        out = transfer.buffered_writer(asyncio.get_running_loop(), write)
        out.write(b"x" * 10)
        out.raw.abandon()
        # (from a thread: were the write still sent to the loop it would arrive, not hang the test)
        await asyncio.wait_for(asyncio.to_thread(out.flush), 5)
        out.close()   # the finalizer's flush on the loop's thread: returns at once
    asyncio.run(go())
    assert sent == []
