"""`corrald sql`'s value and table formatting, against what LXD 5.0.2's `lxd sql` printed for the same
values (recorded from a real lxd), and the events that make backup.yaml be rewritten."""
from corral.instance.backup_yaml import _target
from corral.lxdcmd.sql import go_float, go_sprint, render_table


def test_numbers_print_as_go_float64():
    # lxd sql global "SELECT 1000000, 123456789, 2.0, -5, 1.5, 123456" printed these
    assert [go_sprint(v) for v in (1000000, 123456789, 2.0, -5, 1.5, 123456)] == \
        ["1e+06", "1.23456789e+08", "2", "-5", "1.5", "123456"]
    assert go_float(0.0001) == "0.0001" and go_float(0.00001) == "1e-05" and go_float(1234567.5) == "1.2345675e+06"
    assert go_sprint(None) == "<nil>" and go_sprint(True) == "true" and go_sprint("a|b") == "a|b"


def test_table_layout():
    assert render_table(["id", "key", "value"], [[1, "user.a", "2"]]) == (
        "+----+--------+-------+\n| id |  key   | value |\n+----+--------+-------+\n"
        "| 1  | user.a | 2     |\n+----+--------+-------+\n")
    assert render_table(["id", "key", "value"], []) == (
        "+----+-----+-------+\n| id | key | value |\n+----+-----+-------+\n+----+-----+-------+\n")
    # a value with a newline spans lines (tablewriter's behaviour)
    assert render_table(["k"], [["a\nbb"]]) == "+----+\n| k  |\n+----+\n| a  |\n| bb |\n+----+\n"


def test_events_that_rewrite_backup_yaml():
    def ev(action, source, project="default"):
        return {"type": "lifecycle", "project": project, "metadata": {"action": action, "source": source}}
    assert _target(ev("instance-updated", "/1.0/instances/c1")) == ("default", "c1")
    assert _target(ev("instance-snapshot-created", "/1.0/instances/c1/snapshots/s0", "p1")) == ("p1", "c1")
    assert _target(ev("instance-renamed", "/1.0/instances/c2?project=p1", "p1")) == ("p1", "c2")
    assert _target(ev("profile-updated", "/1.0/profiles/default")) == ("default", None)
    assert _target(ev("instance-deleted", "/1.0/instances/c1")) is None
    assert _target(ev("instance-exec", "/1.0/instances/c1")) is None
    assert _target(ev("network-updated", "/1.0/networks/n")) is None
