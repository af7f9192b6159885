"""The repeated-message filter (issue 9: a flood must not become a flood of log lines) and the
connection budget derived from RLIMIT_NOFILE."""
import logging

from corral import logthrottle, netguard


def _record(msg, *args, level=logging.WARNING, name="corral.test"):
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_are_collapsed_then_counted(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(logthrottle.time, "monotonic", lambda: now[0])
    f = logthrottle.RepeatFilter(burst=3, window=60)
    passed = [f.filter(_record("refusing %s", i)) for i in range(100)]
    assert passed == [True] * 3 + [False] * 97
    assert f.filter(_record("another template"))          # other messages are not held back
    now[0] += 61
    r = _record("refusing %s", "late")
    assert f.filter(r)
    assert r.getMessage() == "refusing late (suppressed 97 similar messages in the last 60s)"


def test_one_decision_per_record_for_every_handler():
    f = logthrottle.RepeatFilter(burst=1, window=60)
    r = _record("x")
    assert f.filter(r) and f.filter(r)          # a second handler asking does not count twice
    assert not f.filter(_record("x"))


def test_info_and_multiline_asyncio_messages():
    f = logthrottle.RepeatFilter(burst=1, window=60)
    assert all(f.filter(_record("info %d", i, level=logging.INFO)) for i in range(10))
    # asyncio's exception handler: per-connection details after the first line, same template.
    assert f.filter(_record("SSL handshake failed\nprotocol: <a>", name="asyncio", level=logging.ERROR))
    assert not f.filter(_record("SSL handshake failed\nprotocol: <b>", name="asyncio", level=logging.ERROR))


def test_key_table_is_bounded(monkeypatch):
    monkeypatch.setattr(logthrottle, "MAX_KEYS", 100)
    f = logthrottle.RepeatFilter()
    for i in range(1000):
        f.filter(_record(f"distinct {i}"))
    assert len(f._seen) <= 100


def test_fd_budget_leaves_room_for_the_daemon():
    for nofile in (1024, 4096, 20000, 1048576):
        b = netguard.fd_budget(nofile)
        assert sum(b.values()) <= nofile - max(512, nofile // 4)
        assert b["https"] >= b["unix"] == b["devlxd"] > 0
    assert netguard.fd_budget(4096) == {"https": 1536, "unix": 768, "devlxd": 768}


def test_tcp_peer_groups_ipv6_by_64():
    assert netguard.tcp_peer(None, ("192.0.2.7", 1)) == "192.0.2.7"
    assert netguard.tcp_peer(None, ("::ffff:192.0.2.7", 1, 0, 0)) == "192.0.2.7"
    assert netguard.tcp_peer(None, ("2001:db8::1", 1, 0, 0)) == netguard.tcp_peer(None, ("2001:db8::ffff", 1, 0, 0))
    assert netguard.tcp_peer(None, ("2001:db8:0:1::1", 1, 0, 0)) == "2001:db8:0:1::/64"
