"""corral/cluster/render.py: LXD 5.0's member rendering, its heartbeat rule and Go's texts."""
from datetime import datetime, timedelta, timezone

from corral.cluster import render

NOW = datetime(2026, 12, 2, 4, 42, 30, tzinfo=timezone.utc)


def row(**kw):
    base = {"id": 2, "name": "b", "address": "10.0.0.2:8443", "description": "", "schema": 7,
            "api_extensions": 90, "heartbeat": "2026-12-02T04:42:29.000000001Z", "state": 0, "arch": "x86_64",
            "failure_domain": "default", "roles": [], "groups": ["default"], "config": {}}
    return {**base, **kw}


def show(r, role=None, leader="", highest=(7, 90), threshold=20):
    return render.member(r, raft_role=role, leader_address=leader, threshold_seconds=threshold,
                         max_version=highest, now=NOW)


def test_online_is_younger_than_the_threshold():
    at = lambda s: (NOW - timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    assert render.online(at(19.9), 20, NOW)
    assert not render.online(at(20), 20, NOW)            # LXD: offline at the threshold itself
    assert render.online("2026-12-02 04:42:20", 20, NOW)  # SQLite's CURRENT_TIMESTAMP form
    assert render.online(NOW - timedelta(seconds=1), 20, NOW)
    assert not render.online(None, 20, NOW) and not render.online("garbage", 20, NOW)


def test_go_texts():
    assert [render.go_duration(s) for s in (0, 0.000123, 0.45, 1.5, 61.25, 3600, 3723.5)] == \
        ["0s", "123µs", "450ms", "1.5s", "1m1.25s", "1h0m0s", "1h2m3.5s"]
    assert render.go_time(datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=timezone.utc)) == \
        "2026-01-02 03:04:05.5 +0000 UTC"
    assert render.go_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "2026-01-02 03:04:05 +0000 UTC"


def test_roles_and_database_flag_from_raft():
    assert (show(row(), "voter", leader="10.0.0.2:8443")["roles"], show(row(), "voter")["database"]) == \
        (["database-leader", "database"], True)
    m = show(row(roles=["event-hub"]), "stand-by")
    assert (m["roles"], m["database"]) == (["event-hub", "database-standby"], True)
    assert (show(row(), "spare")["roles"], show(row(), "spare")["database"]) == ([], False)
    assert show(row(), None)["database"] is False


def test_status_and_message():
    assert (show(row())["status"], show(row())["message"]) == ("Online", "Fully operational")
    off = show(row(heartbeat="2026-12-02T04:41:00Z"))
    assert (off["status"], off["message"]) == ("Offline", "No heartbeat for 1m30s (2026-12-02 04:41:00 +0000 UTC)")
    assert render.member(row(heartbeat="2026-12-02T04:41:00Z"), raft_role="voter", leader_address="",
                         threshold_seconds=20, max_version=(7, 90), now=NOW, local=True)["status"] == "Online"
    assert show(row(state=2))["status"] == "Evacuated"
    assert show(row(), highest=(7, 91))["message"] == "Needs updating to newer version"
    assert show(row(), highest=(7, 90))["status"] == "Online"


def test_field_order_and_writable_part():
    m = show(row(description="d", config={"user.a": "1"}))
    assert list(m) == ["roles", "failure_domain", "description", "config", "groups", "server_name", "url",
                       "database", "status", "message", "architecture"]
    assert render.writable(m) == {"roles": [], "failure_domain": "default", "description": "d",
                                  "config": {"user.a": "1"}, "groups": ["default"]}
