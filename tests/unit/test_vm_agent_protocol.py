"""The host side of the VM agent's wire format (corral/instance/agent/protocol.py) and its errors."""
import errno
import os

import pytest

from corral.instance.agent import protocol as P
from corral.instance.agent.errors import AgentFileError, AgentNotRunning, file_error
from corral.instance.fileroot import FileError


def test_header_round_trip_and_checksum():
    f = P.frame(P.DATA, 0x80000001, b"abc", flags=2)
    assert f[:2] == b"\xc0\xa6" and len(f) == P.HDR_LEN + 3
    assert P.parse_header(f) == (P.DATA, 2, 0x80000001, 3)
    broken = bytearray(f)
    broken[5] ^= 1
    assert P.parse_header(broken) is None


def test_tlv_round_trip():
    payload = P.TLV().add(P.T_ARG, "ls").add(P.T_ARG, "-l").add(P.T_UID, 1000).add(P.T_PTY, True) \
        .add(P.T_NONCE, b"\x00\x01").add(P.T_GID, -1).bytes()
    fields = P.parse_tlv(payload)
    assert fields[P.T_ARG] == [b"ls", b"-l"]
    assert P.tlv_int(fields, P.T_UID) == 1000 and P.tlv_int(fields, P.T_PTY) == 1
    assert P.tlv_int(fields, P.T_GID) == -1 and P.tlv_int(fields, P.T_MODE, 7) == 7
    with pytest.raises(ValueError):
        P.parse_tlv(payload[:-1])


def _ack(nonce: bytes) -> bytes:
    return P.frame(P.HELLO_ACK, 0, P.TLV().add(P.T_NONCE, nonce).add(P.T_VERSION, P.VERSION).bytes())


def test_parser_skips_everything_before_our_ack():
    nonce = os.urandom(16)
    parser = P.Parser(nonce)
    stale = P.frame(P.DATA, 5, b"old data") + _ack(b"x" * 16) + b"\xc0\xa6garbage"
    stream = stale + _ack(nonce) + P.frame(P.REPLY, 1, b"")
    frames = []
    for i in range(0, len(stream), 7):     # in small pieces, split anywhere
        frames += parser.feed(stream[i:i + 7])
    assert parser.synced
    assert [(t, c) for t, _, c, _ in frames] == [(P.HELLO_ACK, 0), (P.REPLY, 1)]


def test_parser_rejects_a_bad_header_once_synced():
    nonce = os.urandom(16)
    parser = P.Parser(nonce)
    parser.feed(_ack(nonce))
    with pytest.raises(ValueError):
        parser.feed(b"\x00" * P.HDR_LEN)


def test_errors_map_like_files_py():
    e = file_error(errno.ENOENT, "Failed to read '/x': No such file or directory", "/x", "read")
    assert isinstance(e, FileError) and isinstance(e, AgentFileError)
    assert (e.status, e.message, e.errno, e.path) == (404, "not found", errno.ENOENT, "/x")
    assert file_error(errno.EACCES, "", "/x", "write").status == 403
    e = file_error(errno.EEXIST, "Failed to create symlink '/l': File exists", "/l", "create symlink")
    assert e.status == 400 and e.message == "Failed to create symlink '/l': file exists"
    e = file_error(errno.EINVAL, "Failed to read '/dev/null': not a regular file", "/dev/null", "read")
    assert e.status == 400 and e.message.endswith("not a regular file")
    assert file_error(errno.EIO, "", "/x", "read").status == 500
    assert AgentNotRunning().message == "LXD VM agent isn't currently running"


def test_agent_binary_names_the_fix_when_missing(monkeypatch, tmp_path):
    import corral.vmagent as vmagent
    monkeypatch.setattr(vmagent, "BINARY", str(tmp_path / "corral-agent"))
    with pytest.raises(FileNotFoundError, match="scripts/setup.sh"):
        vmagent.agent_binary()
    (tmp_path / "corral-agent").write_bytes(b"")
    os.chmod(tmp_path / "corral-agent", 0o755)
    os.utime(tmp_path / "corral-agent", (1, 1))          # older than every source
    with pytest.raises(FileNotFoundError, match="older than"):
        vmagent.agent_binary()
    os.utime(tmp_path / "corral-agent", None)
    assert vmagent.agent_binary() == str(tmp_path / "corral-agent")
    assert any(s.endswith("corral-agent.c") for s in vmagent.sources())
