"""Parsing of /etc/subuid-style files and the idmap built from them."""
from __future__ import annotations

import pytest

from corral.idmap import (IdmapEntry, IdmapError, default_idmap, ensure_subids, parse_subids,
                                   read_subids)


def test_parse_subids_picks_root_ranges_in_order():
    text = "# comment\n_lxd:100000:65536\nroot:100000:10000001\n\nalice:200000:65536\nroot:5:0\nroot:x:1\n0:300000:10\n"
    assert parse_subids(text) == [(100000, 10000001), (300000, 10)]
    assert parse_subids(text, "alice") == [(200000, 65536)]
    assert parse_subids("bad line\nroot:1:2:3\n") == []


def test_read_subids_missing_file(tmp_path):
    assert read_subids(str(tmp_path / "none")) == []


def test_default_idmap(tmp_path):
    uid, gid = tmp_path / "subuid", tmp_path / "subgid"
    uid.write_text("root:100000:65536\n")
    gid.write_text("root:200000:70000\n")
    idmap = default_idmap(str(uid), str(gid))
    assert idmap == [IdmapEntry(True, False, 100000, 0, 65536), IdmapEntry(False, True, 200000, 0, 70000)]
    assert [line for e in idmap for line in e.to_lxc()] == ["u 0 100000 65536", "g 0 200000 70000"]
    assert idmap[0].to_lxd() == {"Isuid": True, "Isgid": False, "Hostid": 100000, "Nsid": 0, "Maprange": 65536}
    assert IdmapEntry.from_lxd(idmap[1].to_lxd()) == idmap[1]


def test_default_idmap_without_range(tmp_path):
    uid, gid = tmp_path / "subuid", tmp_path / "subgid"
    uid.write_text("alice:100000:65536\n")
    gid.write_text("root:100000:65536\n")
    with pytest.raises(IdmapError, match="subuid"):
        default_idmap(str(uid), str(gid))


def test_ensure_subids_appends_once(tmp_path):
    uid, gid = tmp_path / "subuid", tmp_path / "subgid"
    uid.write_text("alice:100000:65536")  # no trailing newline
    gid.write_text("root:100000:65536\n")
    ensure_subids(str(uid), str(gid))
    ensure_subids(str(uid), str(gid))
    assert uid.read_text() == "alice:100000:65536\nroot:1000000:1000000000\n"
    assert gid.read_text() == "root:100000:65536\n"
    (tmp_path / "new").mkdir()
    ensure_subids(str(tmp_path / "new" / "u"), str(tmp_path / "new" / "g"))
    assert (tmp_path / "new" / "u").read_text() == "root:1000000:1000000000\n"
