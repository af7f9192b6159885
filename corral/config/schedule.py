"""snapshots.schedule and snapshots.pattern, as LXD reads them.

A schedule is a cron expression ("<minute> <hour> <dom> <month> <dow>") or an alias, or a
comma-separated list of them (LXD's validate.IsCron). A pattern is a pongo2 template rendered with
`creation_date` (only the `date` filter is supported, with Go's time layout) and may hold "%d" once,
replaced by the next free index (LXD's NextSnapshotName).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from corral.config.values import (  # noqa: F401  (the schedule parsers are values.py's)
    CRON_ALIASES as ALIASES, INSTANCE_ONLY, crons as _crons, parse_schedule, parse_volume_schedule,
)


def on_startup(schedule: str) -> bool:
    return "@startup" in (p.strip() for p in (schedule or "").split(","))


def due(schedule: str, minute: datetime) -> bool:
    """Whether `schedule` fires in the minute starting at `minute` (UTC, seconds dropped)."""
    from croniter import croniter
    start = minute.replace(second=0, microsecond=0)
    for expr in _crons(schedule):
        if croniter(expr, start - timedelta(seconds=1)).get_next(datetime) == start:
            return True
    return False


# Go's reference-time layout tokens -> strftime, longest first.
_GO_LAYOUT = [("2006", "%Y"), ("January", "%B"), ("Monday", "%A"), ("-0700", "%z"), ("MST", "%Z"),
              ("Jan", "%b"), ("Mon", "%a"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("03", "%I"),
              ("04", "%M"), ("05", "%S"), ("06", "%y"), ("PM", "%p")]
_GO_RE = re.compile("|".join(re.escape(t) for t, _ in _GO_LAYOUT))
_TAG = re.compile(r"\{\{\s*creation_date\s*\|\s*date\s*:\s*(?:'([^']*)'|\"([^\"]*)\")\s*\}\}")


def go_date(layout: str, when: datetime) -> str:
    table = dict(_GO_LAYOUT)
    return "".join(when.strftime(table[m.group(0)]) if m.group(0) in table else m.group(0)
                   for m in _split(layout))


def _split(layout: str):
    pos = 0
    for m in _GO_RE.finditer(layout):
        if m.start() > pos:
            yield _Lit(layout[pos:m.start()])
        yield m
        pos = m.end()
    if pos < len(layout):
        yield _Lit(layout[pos:])


class _Lit:
    def __init__(self, text: str):
        self.text = text

    def group(self, _: int) -> str:
        return self.text


def render_pattern(pattern: str, when: datetime | None = None) -> str:
    """The pattern with its template tags rendered; ValueError for what Corral cannot render."""
    when = when or datetime.now(timezone.utc)
    out = _TAG.sub(lambda m: go_date(m.group(1) if m.group(1) is not None else m.group(2), when), pattern)
    if "{{" in out or "{%" in out:
        raise ValueError("only {{ creation_date|date:'LAYOUT' }} template tags are supported in snapshot patterns")
    return out


def parse_snapshot_pattern(v: str) -> str:
    name = render_pattern(v)
    if name.count("%d") > 1:
        raise ValueError("Snapshot pattern may contain '%d' only once")
    if not name or any(c in name for c in "* /\\"):
        raise ValueError(f'snapshot names from "{v}" would be invalid (empty, or with *, spaces or slashes)')
    return v


def _index(pattern: str, taken: set[str]) -> int:
    """LXD's GetNextInstanceSnapshotIndex: one more than the highest index in use."""
    head, tail = pattern.split("%d", 1)
    rx = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail))
    found = [int(m[1]) for n in taken if (m := rx.fullmatch(n))]
    return max(found) + 1 if found else 0


def next_snapshot_name(pattern: str, taken: set[str], when: datetime | None = None) -> str:
    """LXD's NextSnapshotName: render, then replace "%d" by the next index; a pattern without "%d"
    whose name is taken gets "-%d" appended."""
    name = render_pattern(pattern or "snap%d", when)
    if name.count("%d") > 1:
        raise ValueError("Snapshot pattern may contain '%d' only once")
    if "%d" in name:
        return name.replace("%d", str(_index(name, taken)), 1)
    if name in taken:
        name += "-%d"
        return name.replace("%d", str(_index(name, taken)), 1)
    return name
