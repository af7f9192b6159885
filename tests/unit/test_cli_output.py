"""Rendering helpers: tables like lxc's tablewriter, YAML like yaml.v2."""

from corral.cli.output import (
    format_bytes,
    format_bytes_iec,
    format_time_long,
    format_time_short,
    progress_text,
    render_list,
    to_json,
    to_yaml,
)

HEADERS = ["NAME", "DESCRIPTION", "USED BY"]
ROWS = [["default", "Default LXD profile", "1"], ["reftest", "", "0"]]


def test_table_matches_lxc():
    assert render_list("table", HEADERS, ROWS, None) == (
        "+---------+---------------------+---------+\n"
        "|  NAME   |     DESCRIPTION     | USED BY |\n"
        "+---------+---------------------+---------+\n"
        "| default | Default LXD profile | 1       |\n"
        "+---------+---------------------+---------+\n"
        "| reftest |                     | 0       |\n"
        "+---------+---------------------+---------+\n"
    )


def test_empty_table_has_header_only():
    assert render_list("table", ["ALIAS", "FINGERPRINT"], [], None) == (
        "+-------+-------------+\n| ALIAS | FINGERPRINT |\n+-------+-------------+\n"
    )


def test_multiline_cells():
    out = render_list("table", ["NAME", "IPV4"], [["c1", "10.0.0.2 (eth0)\n10.0.0.3 (eth1)"]], None)
    assert "| c1   | 10.0.0.2 (eth0) |\n|      | 10.0.0.3 (eth1) |\n" in out


def test_compact_matches_lxc():
    assert render_list("compact", HEADERS, ROWS, None) == (
        "   NAME        DESCRIPTION      USED BY  \n"
        "  default  Default LXD profile  1        \n"
        "  reftest                       0        \n"
    )


def test_csv_quotes_like_go():
    assert render_list("csv", HEADERS, [["a,b", 'say "hi"', "1"]], None) == '"a,b","say ""hi""",1\n'


def test_json_is_compact_and_escapes_html():
    assert to_json([{"a": "<x>&", "b": "é"}]) == '[{"a":"\\u003cx\\u003e\\u0026","b":"é"}]'
    assert render_list("json", HEADERS, ROWS, [{"name": "x"}]) == '[{"name":"x"}]\n'


def test_yaml_quoting_like_yaml_v2():
    out = to_yaml({"config": {"user.t": "true", "user.n": "123", "c": "a: b", "e": "", "m": "l1\nl2",
                              "at": "@", "ts": "2026-11-21T13:54:47Z"}, "devices": {}, "used_by": [],
                   "fds": {"0": "x"}})
    assert out == (
        "config:\n"
        '  user.t: "true"\n'
        '  user.n: "123"\n'
        "  c: 'a: b'\n"
        '  e: ""\n'
        "  m: |-\n    l1\n    l2\n"
        "  at: '@'\n"
        '  ts: "2026-11-21T13:54:47Z"\n'
        "devices: {}\n"
        "used_by: []\n"
        "fds:\n"
        '  "0": x\n'
    )


def test_yaml_typed_times_and_nil_slices():
    out = to_yaml({"created_at": "2026-11-21T13:54:47.675672817Z", "backups": None, "state": None}, typed=True)
    assert out == "created_at: 2026-11-21T13:54:47.675672817Z\nbackups: []\nstate: null\n"
    # a time.Time written back by Go: no trailing zeros in the fraction (lxc list -f yaml)
    out = to_yaml([{"last_used_at": "2026-12-02T17:49:15.778390Z", "uploaded_at": "2026-12-02T17:49:15.000000Z"}],
                  typed=True)
    assert out == "- last_used_at: 2026-12-02T17:49:15.77839Z\n  uploaded_at: 2026-12-02T17:49:15Z\n"


def test_units():
    assert format_bytes(936) == "936B"
    assert format_bytes(1200) == "1.20kB"
    assert format_bytes_iec(843776) == "824.00KiB"
    assert format_bytes_iec(2256896) == "2.15MiB"


def test_times(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    assert format_time_short("2026-11-21T13:54:47.675672817Z") == "2026/11/21 13:54 UTC"
    assert format_time_long("2026-11-21T13:54:47Z") == "Nov 21, 2026 at 1:54pm (UTC)"
    assert format_time_short("0001-01-01T00:00:00Z") == ""


def test_progress_text():
    op = {"metadata": {"create_instance_from_image_unpack_progress": "Unpack: 45% (34.39MB/s)",
                       "progress": {"percent": "45", "speed": "34392854", "stage": "x"}}}
    assert progress_text(op) == ("Unpack: 45% (34.39MB/s)", 45.0)
    assert progress_text({"metadata": None}) == ("", None)
