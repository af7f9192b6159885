"""corral.instance.files: file API operations confined to a container rootfs."""
from __future__ import annotations

import io
import os
import stat
import threading
import uuid

import pytest

from corral.instance import files
from corral.instance.files import FileError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")

HOST_PASSWD = open("/etc/passwd", "rb").read()
FAKE_PASSWD = b"root:x:0:0:FAKE ROOTFS PASSWD:/root:/bin/sh\n"


@pytest.fixture
def rootfs(tmp_path):
    """A fake rootfs full of hostile symlinks, plus a 'host' directory next to it."""
    root = tmp_path / "rootfs"
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_bytes(b"host secret\n")
    for d in ("etc", "tmp", "usr/lib", "var/empty"):
        (root / d).mkdir(parents=True)
    (root / "etc/passwd").write_bytes(FAKE_PASSWD)
    (root / "etc/hosts-inside").write_bytes(b"127.0.0.1 inside\n")
    os.symlink("/", root / "evil")
    os.symlink("../../../../..", root / "up")
    os.symlink("/etc/hosts-inside", root / "etc/link")
    os.symlink(str(host / "secret"), root / "etc/hostfile")          # absolute host path
    os.symlink("../../host/secret", root / "etc/relhost")            # relative, escapes on host
    os.symlink(str(host), root / "etc/hostdir")
    os.symlink("usr/lib", root / "lib")
    return str(root)


def unique() -> str:
    return f"corral-test-{uuid.uuid4().hex}"


def read(rootfs, path):
    info, f = files.read_file(rootfs, path)
    with f:
        return info, f.read()


# ---------------------------------------------------------------- path handling

def test_clean_path():
    assert files.clean_path("/etc//./hosts") == "/etc/hosts"
    assert files.clean_path("etc/hosts") == "/etc/hosts"
    assert files.clean_path("/../../etc/") == "/etc"
    assert files.clean_path("/") == "/"
    for bad in ("", "/etc/\x00x", "/" + "a" * 5000):
        with pytest.raises(FileError) as e:
            files.clean_path(bad)
        assert e.value.status == 400


# ---------------------------------------------------------------- escapes on read

@pytest.mark.parametrize("path", ["/evil/etc/passwd", "/up/etc/passwd", "/../../../etc/passwd",
                                  "/evil/evil/up/etc/passwd", "/etc/../up/../etc/passwd"])
def test_read_through_escaping_symlinks_stays_in_rootfs(rootfs, path):
    assert HOST_PASSWD != FAKE_PASSWD
    _, data = read(rootfs, path)
    assert data == FAKE_PASSWD


def test_read_symlink_to_host_file_never_reads_host(rootfs):
    for path in ("/etc/hostfile", "/etc/relhost"):
        entry = files.get(rootfs, path)
        assert entry.info.type == "symlink" and entry.file is None
        with pytest.raises(FileError):
            files.read_file(rootfs, path)
    with pytest.raises(FileError) as e:
        files.list_dir(rootfs, "/etc/hostdir")
    assert e.value.status == 400
    with pytest.raises(FileError) as e:
        files.stat(rootfs, "/etc/hostdir/secret")       # resolved in-root: does not exist
    assert e.value.status == 404


def test_stat_is_lstat(rootfs):
    assert files.stat(rootfs, "/etc/link").type == "symlink"
    assert files.stat(rootfs, "/evil").type == "symlink"
    assert files.stat(rootfs, "/").type == "directory"
    info = files.stat(rootfs, "/etc/passwd")
    assert (info.type, info.size) == ("file", len(FAKE_PASSWD))
    assert files.stat(rootfs, "/evil/etc").type == "directory"   # intermediate links followed in-root


def test_get_and_list(rootfs):
    assert files.list_dir(rootfs, "/") == sorted(["etc", "tmp", "usr", "var", "evil", "up", "lib"])
    assert files.list_dir(rootfs, "/var/empty") == []
    assert "passwd" in files.list_dir(rootfs, "/evil/etc")
    with pytest.raises(FileError):
        files.list_dir(rootfs, "/etc/passwd")
    entry = files.get(rootfs, "/etc")
    assert entry.info.type == "directory" and "link" in entry.entries


def test_read_link(rootfs):
    assert files.read_link(rootfs, "/etc/link") == "/etc/hosts-inside"
    assert files.read_link(rootfs, "/up") == "../../../../.."
    assert files.read_link(rootfs, "/up", absolute=True) == "/"
    assert files.read_link(rootfs, "/lib", absolute=True) == "/usr/lib"
    with pytest.raises(FileError):
        files.read_link(rootfs, "/etc/passwd")


def test_read_fifo_does_not_block(rootfs):
    os.mkfifo(os.path.join(rootfs, "tmp/fifo"))
    result = []

    def run():
        try:
            files.read_file(rootfs, "/tmp/fifo")
        except FileError as e:
            result.append(e.status)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    assert result == [400]


# ---------------------------------------------------------------- escapes on write

@pytest.mark.parametrize("prefix", ["/evil/tmp", "/up/tmp", "/evil/up/evil/tmp", "/../tmp"])
def test_write_through_escaping_symlinks_stays_in_rootfs(rootfs, prefix):
    name = unique()
    files.write_file(rootfs, f"{prefix}/{name}", b"x", 0, 0, 0o644)
    assert not os.path.exists(f"/tmp/{name}")
    assert open(os.path.join(rootfs, "tmp", name), "rb").read() == b"x"


def test_write_into_host_dir_symlink_does_not_escape(rootfs, tmp_path):
    with pytest.raises(FileError) as e:
        files.write_file(rootfs, "/etc/hostdir/new", b"x")
    assert e.value.status == 404
    assert not (tmp_path / "host/new").exists()
    with pytest.raises(FileError):
        files.mkdir_parents(rootfs, "/etc/hostdir/sub")
    assert not (tmp_path / "host/sub").exists()


@pytest.mark.parametrize("link", ["/etc/hostfile", "/etc/relhost"])
@pytest.mark.parametrize("append", [False, True])
def test_write_to_symlink_to_host_file_leaves_host_alone(rootfs, tmp_path, link, append):
    before = os.stat(tmp_path / "host/secret")
    try:
        files.write_file(rootfs, link, b"pwned\n", 0, 0, 0o777, append=append)
    except FileError:
        pass
    assert (tmp_path / "host/secret").read_bytes() == b"host secret\n"
    after = os.stat(tmp_path / "host/secret")
    assert (after.st_mode, after.st_uid, after.st_ino) == (before.st_mode, before.st_uid, before.st_ino)
    assert os.readlink(os.path.join(rootfs, link.lstrip("/"))) != ""   # the link is still there


def test_write_to_symlink_follows_inside_rootfs(rootfs):
    files.write_file(rootfs, "/etc/link", b"new hosts\n", 0, 0, 0o644)
    assert os.path.islink(os.path.join(rootfs, "etc/link"))
    assert open(os.path.join(rootfs, "etc/hosts-inside"), "rb").read() == b"new hosts\n"
    # a relative target with ".." that would escape on the host is clamped in-root
    os.symlink("../../../../../tmp/" + (name := unique()), os.path.join(rootfs, "etc/rel"))
    files.write_file(rootfs, "/etc/rel", b"y")
    assert not os.path.exists("/tmp/" + name)
    assert open(os.path.join(rootfs, "tmp", name), "rb").read() == b"y"


def test_symlink_loop(rootfs):
    os.symlink("b", os.path.join(rootfs, "tmp/a"))
    os.symlink("a", os.path.join(rootfs, "tmp/b"))
    with pytest.raises(FileError) as e:
        files.write_file(rootfs, "/tmp/a", b"x")
    assert e.value.status == 400


# ---------------------------------------------------------------- write semantics

def test_write_applies_owner_and_mode_exactly(rootfs):
    files.write_file(rootfs, "/tmp/f", io.BytesIO(b"abc" * 1000), 1234, 5678, 0o4751)
    st = os.lstat(os.path.join(rootfs, "tmp/f"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4751)
    info, data = read(rootfs, "/tmp/f")
    assert data == b"abc" * 1000
    assert (info.type, info.uid, info.gid, info.mode, info.size) == ("file", 1234, 5678, 0o4751, 3000)
    files.write_file(rootfs, "/tmp/g", [b"a", b"", b"b"], mode="0600")
    st = os.lstat(os.path.join(rootfs, "tmp/g"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    files.write_file(rootfs, "/tmp/h", b"")
    assert stat.S_IMODE(os.lstat(os.path.join(rootfs, "tmp/h")).st_mode) == 0o644
    assert [n for n in os.listdir(os.path.join(rootfs, "tmp")) if "corral-" in n] == []


def test_overwrite_keeps_attrs_like_lxd_unless_forced(rootfs):
    p = os.path.join(rootfs, "tmp/f")
    files.write_file(rootfs, "/tmp/f", b"one", 1000, 1000, 0o640)
    files.write_file(rootfs, "/tmp/f", b"two", 0, 0, 0o777)
    st = os.lstat(p)
    assert open(p, "rb").read() == b"two"
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o640)
    files.write_file(rootfs, "/tmp/f", b"three", 7, 8, 0o600, force_attrs=True)
    st = os.lstat(p)
    assert open(p, "rb").read() == b"three"
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o600)


def test_append(rootfs):
    files.write_file(rootfs, "/tmp/log", b"a\n", 1, 2, 0o600)
    files.write_file(rootfs, "/tmp/log", io.BytesIO(b"b\n"), 0, 0, 0o777, append=True)
    p = os.path.join(rootfs, "tmp/log")
    assert open(p, "rb").read() == b"a\nb\n"
    st = os.lstat(p)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1, 2, 0o600)
    with pytest.raises(FileError) as e:                 # LXD: append does not create
        files.write_file(rootfs, "/tmp/missing", b"x", append=True)
    assert e.value.status == 404


def test_write_errors(rootfs):
    for path in ("/etc", "/", "/evil"):                 # /evil -> / : a directory
        with pytest.raises(FileError) as e:
            files.write_file(rootfs, path, b"x")
        assert e.value.status == 400
    with pytest.raises(FileError) as e:
        files.write_file(rootfs, "/nope/file", b"x")
    assert (e.value.status, e.value.message) == (404, "not found")
    with pytest.raises(FileError) as e:
        files.write_file(rootfs, "/etc/passwd/x", b"x")
    assert e.value.status == 404
    for kw in ({"uid": -5}, {"gid": 2**32}, {"mode": 0o17777}, {"mode": "rwx"}):
        with pytest.raises(FileError) as e:
            files.write_file(rootfs, "/tmp/x", b"x", **kw)
        assert e.value.status == 400
    os.mkfifo(os.path.join(rootfs, "tmp/fifo"))
    with pytest.raises(FileError):
        files.write_file(rootfs, "/tmp/fifo", b"x", append=True)


# ---------------------------------------------------------------- directories and symlinks

def test_make_dir(rootfs):
    d = unique()
    files.make_dir(rootfs, f"/evil/tmp/{d}", 10, 20, 0o711)
    assert not os.path.exists(f"/tmp/{d}")
    st = os.lstat(os.path.join(rootfs, "tmp", d))
    assert stat.S_ISDIR(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (10, 20, 0o711)
    files.make_dir(rootfs, f"/tmp/{d}", 0, 0, 0o777)     # exists: ok, unchanged
    assert stat.S_IMODE(os.lstat(os.path.join(rootfs, "tmp", d)).st_mode) == 0o711
    files.make_dir(rootfs, "/tmp/e")
    assert stat.S_IMODE(os.lstat(os.path.join(rootfs, "tmp/e")).st_mode) == 0o750
    files.make_dir(rootfs, "/lib")                       # symlink to a directory: ok
    with pytest.raises(FileError) as e:
        files.make_dir(rootfs, "/a/b")
    assert e.value.status == 404
    with pytest.raises(FileError) as e:
        files.make_dir(rootfs, "/etc/passwd")
    assert e.value.status == 400


def test_mkdir_parents(rootfs):
    name = unique()
    files.mkdir_parents(rootfs, f"/up/tmp/{name}/x/y", 3, 4, 0o755)
    assert not os.path.exists(f"/tmp/{name}")
    for sub in (name, f"{name}/x", f"{name}/x/y"):
        st = os.lstat(os.path.join(rootfs, "tmp", sub))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (3, 4, 0o755)
    files.mkdir_parents(rootfs, "/lib/foo")              # through an in-root symlink
    assert os.path.isdir(os.path.join(rootfs, "usr/lib/foo"))
    files.mkdir_parents(rootfs, "/")
    with pytest.raises(FileError):
        files.mkdir_parents(rootfs, "/etc/passwd/x")


def test_make_symlink(rootfs):
    files.make_symlink(rootfs, "/tmp/l", "../../../etc/shadow", 5, 6)
    p = os.path.join(rootfs, "tmp/l")
    assert os.readlink(p) == "../../../etc/shadow"
    st = os.lstat(p)
    assert (st.st_uid, st.st_gid) == (5, 6)
    assert files.stat(rootfs, "/tmp/l").type == "symlink"
    files.make_symlink(rootfs, "/tmp/l", "../../../etc/shadow")   # same target: ok
    with pytest.raises(FileError):
        files.make_symlink(rootfs, "/tmp/l", "/other")
    with pytest.raises(FileError) as e:
        files.make_symlink(rootfs, "/tmp/missing/l", "/x")
    assert e.value.status == 404
    name = unique()
    files.make_symlink(rootfs, f"/evil/tmp/{name}", "/etc/passwd")  # parent resolved in-root
    assert os.readlink(os.path.join(rootfs, "tmp", name)) == "/etc/passwd"
    assert not os.path.lexists(f"/tmp/{name}")


def test_delete(rootfs, tmp_path):
    files.write_file(rootfs, "/tmp/f", b"x")
    files.delete(rootfs, "/tmp/f")
    assert not os.path.exists(os.path.join(rootfs, "tmp/f"))
    files.delete(rootfs, "/etc/hostfile")                # removes the link, not the target
    assert not os.path.lexists(os.path.join(rootfs, "etc/hostfile"))
    assert (tmp_path / "host/secret").exists()
    files.delete(rootfs, "/evil")
    assert os.path.isdir(rootfs)
    files.delete(rootfs, "/var/empty")
    assert not os.path.exists(os.path.join(rootfs, "var/empty"))
    with pytest.raises(FileError) as e:
        files.delete(rootfs, "/etc")                     # not empty
    assert e.value.status == 400
    with pytest.raises(FileError) as e:
        files.delete(rootfs, "/")
    assert e.value.status == 400
    with pytest.raises(FileError) as e:
        files.delete(rootfs, "/nope")
    assert (e.value.status, e.value.message) == (404, "not found")
    with pytest.raises(FileError) as e:
        files.delete(rootfs, "/up/host/secret")          # in-root: no such thing
    assert e.value.status == 404
    assert (tmp_path / "host/secret").exists()


def test_missing_paths_are_404(rootfs):
    for fn in (files.stat, files.get, files.read_file, files.list_dir, files.read_link):
        with pytest.raises(FileError) as e:
            fn(rootfs, "/no/such/thing")
        assert (e.value.status, e.value.message) == (404, "not found")
