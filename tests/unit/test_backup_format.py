"""corral/backup/format.py (index.yaml parsing, tarball member checks) and LXD's filter
value matching (corral/api/filtering.py)."""
import os
import io
import tarfile

import pytest

from corral.api import filtering
from corral.errors import BadRequest
from corral.backup.format import BackupTarball, load_yaml, parse_index

INDEX = b"""name: c1
backend: dir
pool: default
snapshots: [snap0]
optimized: false
type: container
config:
  container:
    name: c1
    created_at: 2026-12-01T21:53:46.732644858Z
    config: {user.a: b}
  snapshots:
  - name: snap0
    expires_at: 0001-01-01T00:00:00Z
"""


def _tar(path, members):
    with tarfile.open(path, "w") as tf:
        for name, kw, data in members:
            ti = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(ti, k, v)
            if ti.type == tarfile.REGTYPE:
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return str(path)


def test_parse_index_keeps_timestamps_as_strings():
    info = parse_index(load_yaml(INDEX))
    assert info.name == "c1" and info.kind == "container" and info.snapshots == ["snap0"]
    assert info.instance["created_at"] == "2026-12-01T21:53:46.732644858Z"
    assert info.instance_snapshots[0]["expires_at"] == "0001-01-01T00:00:00Z"


def test_parse_index_falls_back_to_backup_yaml():
    info = parse_index({"name": "c1", "snapshots": []}, {"container": {"name": "c1", "config": {}}})
    assert info.instance == {"name": "c1", "config": {}}


@pytest.mark.parametrize("doc", [b"- a list", b"name: [", b"snapshots: []"])
def test_bad_index_is_a_400(doc):
    with pytest.raises(BadRequest):
        parse_index(load_yaml(doc))


def test_tarball_checks(tmp_path):
    ok = _tar(tmp_path / "ok.tar", [("backup/index.yaml", {}, INDEX),
                                    ("backup/container/rootfs/bin/busybox", {}, b"x"),
                                    ("backup/container/rootfs/bin/sh", {"type": tarfile.SYMTYPE,
                                                                        "linkname": "/bin/busybox"}, b""),
                                    ("backup/container/rootfs/bin/ls", {"type": tarfile.LNKTYPE,
                                                                        "linkname": "backup/container/rootfs/bin/busybox"},
                                     b"")])
    with BackupTarball(ok) as bt:
        assert bt.info().name == "c1"
        assert bt.names_below("backup/container") == {"rootfs"}
    bad = [("backup/container/rootfs/bin/sh/x", {}, b"x")]   # below the symlink of the good one
    with pytest.raises(BadRequest, match="below a symlink"):
        BackupTarball(_tar(tmp_path / "bad.tar", [("backup/index.yaml", {}, INDEX),
                                                  ("backup/container/rootfs/bin/sh",
                                                   {"type": tarfile.SYMTYPE, "linkname": "/"}, b"")] + bad))
    with pytest.raises(BadRequest, match="device node"):
        BackupTarball(_tar(tmp_path / "dev.tar", [("backup/index.yaml", {}, INDEX),
                                                  ("backup/container/rootfs/dev/x", {"type": tarfile.CHRTYPE}, b"")]))
    with pytest.raises(BadRequest, match="escapes"):
        BackupTarball(_tar(tmp_path / "dd.tar", [("backup/index.yaml", {}, INDEX), ("backup/../x", {}, b"")]))


@pytest.mark.parametrize("value,pattern,expected", [
    ("Running", "running", True), ("Running", "RUNNING", True), ("Running", "run", False),
    ("Running", "^run", True), ("web-12", "web-.*", True), ("web-12", "(w+)+$", False),
    ("Stopped", "running", False), ("x", "[", False), (True, "TRUE", True), (None, "", False),
])
def test_filter_values_match_like_lxd(value, pattern, expected):
    assert filtering._value_matches(value, pattern) is expected


def test_backup_yaml_rewritten_only_when_its_text_changes(tmp_path):
    """The start-up pass over every instance must not rewrite (and fsync) files that are current."""
    from corral.backup import yamlfile
    path = str(tmp_path / yamlfile.FILENAME)
    assert yamlfile.write_file(path, {"container": {"name": "c1"}}) is True
    ino = os.stat(path).st_ino
    assert yamlfile.write_file(path, {"container": {"name": "c1"}}) is False
    assert os.stat(path).st_ino == ino                      # not replaced
    assert yamlfile.write_file(path, {"container": {"name": "c2"}}) is True
    assert os.stat(path).st_ino != ino and "c2" in open(path).read()
    assert os.stat(path).st_mode & 0o777 == 0o400
