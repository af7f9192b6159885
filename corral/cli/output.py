"""Shared rendering helpers: YAML/JSON in the style of LXD's Go client, and
list output in the table/compact/csv/json/yaml formats of ``lxc``."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any, Callable, Iterable, Sequence

import click
import yaml

FORMATS = ("table", "compact", "csv", "json", "yaml")


# --------------------------------------------------------------------------
# YAML, as gopkg.in/yaml.v2 renders it
# --------------------------------------------------------------------------


class GoYAMLDumper(yaml.SafeDumper):
    """A dumper whose scalar quoting follows yaml.v2: strings that would be read
    back as another type (numbers, booleans, timestamps, empty) are double
    quoted, multi-line strings use the literal block style."""

    def ignore_aliases(self, data: Any) -> bool:  # never emit &anchors
        return True


def _represent_str(dumper: GoYAMLDumper, data: str) -> yaml.ScalarNode:
    tag = "tag:yaml.org,2002:str"
    if "\n" in data:
        return dumper.represent_scalar(tag, data, style="|")
    if data == "":
        return dumper.represent_scalar(tag, data, style='"')
    resolved = dumper.resolve(yaml.ScalarNode, data, (True, False))
    if resolved != tag:
        return dumper.represent_scalar(tag, data, style='"')
    return dumper.represent_scalar(tag, data)


def _represent_none(dumper: GoYAMLDumper, data: None) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:null", "null")


class GoTime(str):
    """A timestamp that was a time.Time in Go: yaml.v2 emits it unquoted."""


def _represent_time(dumper: GoYAMLDumper, data: GoTime) -> yaml.ScalarNode:
    value = str(data)
    tag = dumper.resolve(yaml.ScalarNode, value, (True, False))
    if tag == "tag:yaml.org,2002:timestamp":
        return dumper.represent_scalar(tag, value)
    return _represent_str(dumper, value)


GoYAMLDumper.add_representer(str, _represent_str)
GoYAMLDumper.add_representer(GoTime, _represent_time)
GoYAMLDumper.add_representer(type(None), _represent_none)

TIME_KEYS = frozenset(
    {"created_at", "updated_at", "last_used_at", "expires_at", "uploaded_at", "started_at", "last_seen",
     "first_seen_at", "last_seen_at"}
)


# Slice and map fields of API structs: a JSON null is a nil slice/map in Go,
# which yaml.v2 renders as [] / {}.
LIST_KEYS = frozenset({"backups", "snapshots", "profiles", "used_by", "aliases", "api_extensions", "addresses"})
MAP_KEYS = frozenset({"config", "devices", "expanded_config", "expanded_devices", "properties"})
# Fields that are Go maps: encoding/json and yaml.v2 write their keys sorted.
SORTED_KEYS = MAP_KEYS
# Go maps of structs: only their own keys are sorted.
SHALLOW_SORTED_KEYS = frozenset({"network", "disk", "resources"})


def go_time(value: str) -> str:
    """A time stamp as Go's RFC3339Nano writes it back: no trailing zeros in the fraction."""
    if "." not in value or not value[:4].isdigit():
        return value
    head, rest = value.split(".", 1)
    i = 0
    while i < len(rest) and rest[i].isdigit():
        i += 1
    frac = rest[:i].rstrip("0")
    return head + ("." + frac if frac else "") + rest[i:]


def go_times(data: Any) -> Any:
    """Every well-known time field re-marshalled as lxc does after parsing it into a time.Time."""
    if isinstance(data, dict):
        return {k: (go_time(v) if k in TIME_KEYS and isinstance(v, str) else go_times(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [go_times(v) for v in data]
    return data


def mark_times(data: Any) -> Any:
    """Mark the well-known time.Time fields of API structs (see GoTime) and
    render null slices/maps as yaml.v2 does."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if k in TIME_KEYS and isinstance(v, str):
                out[k] = GoTime(go_time(v))   # as Go writes a time.Time back
            elif v is None and k in LIST_KEYS:
                out[k] = []
            elif v is None and k in MAP_KEYS:
                out[k] = {}
            elif k in SORTED_KEYS and isinstance(v, dict):
                out[k] = mark_times(sorted_keys(v))
            elif k in SHALLOW_SORTED_KEYS and isinstance(v, dict):
                out[k] = mark_times({kk: v[kk] for kk in sorted(v)})
            else:
                out[k] = mark_times(v)
        return out
    if isinstance(data, list):
        return [mark_times(v) for v in data]
    return data


def to_yaml(data: Any, typed: bool = False) -> str:
    """Render ``data`` as YAML (keys kept in the order given, like Go structs).

    ``typed``: the data is an API struct, so its time fields are unquoted."""
    if typed:
        data = mark_times(data)
    return yaml.dump(
        data,
        Dumper=GoYAMLDumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        indent=2,
    )


def sorted_keys(data: Any) -> Any:
    """Recursively sort mapping keys (Go marshals map[string]any sorted)."""
    if isinstance(data, dict):
        return {k: sorted_keys(data[k]) for k in sorted(data)}
    if isinstance(data, list):
        return [sorted_keys(v) for v in data]
    return data


def load_yaml(text: str) -> Any:
    return yaml.safe_load(text)


# --------------------------------------------------------------------------
# JSON, as encoding/json renders it
# --------------------------------------------------------------------------


def _go_escape(text: str) -> str:
    # encoding/json escapes HTML-significant characters and line separators.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def to_json(data: Any, indent: str | None = None, escape_html: bool = True) -> str:
    """json.Marshal (compact) or json.MarshalIndent(data, "", indent)."""
    if indent is None:
        out = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    else:
        out = json.dumps(data, ensure_ascii=False, indent=indent)
    return _go_escape(out) if escape_html else out


# --------------------------------------------------------------------------
# Lists
# --------------------------------------------------------------------------


def _render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """tablewriter-style ASCII table: centred headers, a rule between rows."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.ASCII2, show_lines=True, highlight=False, padding=(0, 1))
    for header in headers:
        table.add_column(header, justify="center", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(str(cell), justify="left") for cell in row))
    text = _render_rich(table)
    if not rows:  # tablewriter: top rule, header, bottom rule
        text = "\n".join(text.splitlines()[:3]) + "\n"
    return text


def _render_compact(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """lxc's borderless 'compact' table (two spaces around every column)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            for line in cell.split("\n"):
                widths[i] = max(widths[i], len(line))

    def center(text: str, width: int) -> str:
        gap = width - len(text)
        return " " * (gap // 2) + text + " " * (gap - gap // 2)

    out = ["".join("  " + center(h, widths[i]) for i, h in enumerate(headers)) + "  "]
    for row in cells:
        split = [cell.split("\n") for cell in row]
        height = max((len(s) for s in split), default=1)
        for n in range(height):
            out.append(
                "".join(
                    "  " + (s[n] if n < len(s) else "").ljust(widths[i]) for i, s in enumerate(split)
                )
                + "  "
            )
    return "\n".join(out) + "\n"


def _render_rich(renderable: Any) -> str:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(
        file=buf,
        width=100000,
        color_system=None,
        force_terminal=False,
        legacy_windows=False,
        emoji=False,
        markup=False,
        highlight=False,
    )
    console.print(renderable, crop=False, soft_wrap=False)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def _render_csv(rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    for row in rows:
        writer.writerow([str(c) for c in row])
    return buf.getvalue()


def render_list(
    fmt: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    raw: Any,
) -> str:
    """Render a list result in one of lxc's formats.  ``raw`` is the API data
    rendered for json/yaml."""
    if fmt == "table":
        return _render_table(headers, rows)
    if fmt == "compact":
        return _render_compact(headers, rows)
    if fmt == "csv":
        return _render_csv(rows)
    if fmt == "json":
        return to_json(go_times(raw)) + "\n"
    if fmt == "yaml":
        return to_yaml(go_times(raw), typed=True)
    raise click.ClickException(f"Invalid format {fmt!r}")


def print_list(fmt: str, headers: Sequence[str], rows: Sequence[Sequence[str]], raw: Any) -> None:
    click.echo(render_list(fmt, headers, rows, raw), nl=False)


def format_option(default: str = "table") -> Callable:
    return click.option(
        "-f",
        "--format",
        "fmt",
        default=default,
        show_default=True,
        type=click.Choice(FORMATS),
        help="Format (csv|json|table|yaml|compact)",
    )


# --------------------------------------------------------------------------
# Small value formatters shared by commands
# --------------------------------------------------------------------------


def yes_no(value: bool) -> str:
    return "YES" if value else "NO"


def format_bytes(n: int | float, precision: int = 2) -> str:
    """units.GetByteSizeString: decimal units (kB, MB, ...)."""
    n = float(n)
    if n < 1000:
        return f"{int(n)}B"
    for unit in ("kB", "MB", "GB", "TB", "PB", "EB"):
        n /= 1000
        if n < 1000:
            return f"{n:.{precision}f}{unit}"
    return f"{n:.{precision}f}EB"


def format_bytes_iec(n: int | float, precision: int = 2) -> str:
    """units.GetByteSizeStringIEC: binary units (KiB, MiB, ...)."""
    n = float(n)
    if n < 1024:
        return f"{int(n)}B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.{precision}f}{unit}"
    return f"{n:.{precision}f}EiB"


def parse_time(value: str | None):
    """Parse an RFC3339(Nano) timestamp as LXD returns it; None for zero."""
    import datetime as _dt

    if not value or value.startswith("0001-01-01"):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Trim nanoseconds to microseconds.
    if "." in text:
        head, rest = text.split(".", 1)
        frac = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            frac += rest[i]
            i += 1
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest[i:]}"
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def local_time(value: str | None):
    t = parse_time(value)
    return t.astimezone() if t is not None else None


def format_time_short(value: str | None) -> str:
    """'2006/01/02 15:04 MST' (lxc operation list, list -c s...)."""
    t = local_time(value)
    if t is None:
        return ""
    return t.strftime("%Y/%m/%d %H:%M ") + (t.tzname() or "UTC")


def format_time_long(value: str | None) -> str:
    """'Jan 2, 2006 at 3:04pm (MST)' (lxc image list)."""
    t = local_time(value)
    if t is None:
        return ""
    hour = t.hour % 12 or 12
    ampm = "am" if t.hour < 12 else "pm"
    return f"{t.strftime('%b')} {t.day}, {t.year} at {hour}:{t.minute:02d}{ampm} ({t.tzname() or 'UTC'})"


def format_time_info(value: str | None) -> str:
    """'2006/01/02 15:04 MST' used by lxc info/image info."""
    return format_time_short(value)


def write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def iter_sorted(items: Iterable[dict], key: str = "name") -> list[dict]:
    return sorted(items, key=lambda item: str(item.get(key, "")))


# --------------------------------------------------------------------------
# Operation progress
# --------------------------------------------------------------------------


def progress_text(op: dict) -> tuple[str, float | None]:
    """(text, percent) of an operation's progress metadata, like lxc shows it
    ('Unpack: 45% (12.00MB/s)')."""
    meta = op.get("metadata") if isinstance(op, dict) else None
    if not isinstance(meta, dict):
        return "", None
    text = ""
    for key, value in meta.items():
        if key.endswith("_progress") and isinstance(value, str) and value:
            text = value
            break
    percent: float | None = None
    prog = meta.get("progress")
    if isinstance(prog, dict):
        try:
            percent = float(prog.get("percent"))
        except (TypeError, ValueError):
            percent = None
        if not text and percent is not None:
            stage = str(prog.get("stage", "")).replace("_", " ")
            text = f"{stage}: {percent:.0f}%".strip(": ")
    if percent is None and text:
        import re

        m = re.search(r"(\d+(?:\.\d+)?)%", text)
        if m:
            percent = float(m.group(1))
    return text, percent


class OpProgress:
    """Progress of a long operation: a rich progress bar on a terminal,
    nothing otherwise (or with --quiet)."""

    def __init__(self, label: str, quiet: bool = False, stream: Any = None):
        self.label = label
        self.stream = stream or sys.stdout
        self.enabled = not quiet and _isatty(self.stream)
        self._progress = None
        self._task = None

    def __enter__(self) -> "OpProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done()

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        console = Console(file=self.stream)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=100, detail="")

    def update(self, op: dict) -> None:
        if not self.enabled:
            return
        text, percent = progress_text(op)
        if not text and percent is None:
            return
        if self._progress is None:
            self._start()
        kwargs: dict[str, Any] = {"detail": text}
        if percent is not None:
            kwargs["completed"] = percent
        self._progress.update(self._task, **kwargs)

    def set(self, percent: float | None, text: str = "") -> None:
        """Report progress directly (uploads/downloads)."""
        meta: dict[str, Any] = {"x_progress": text}
        if percent is not None:
            meta["progress"] = {"percent": str(percent)}
        self.update({"metadata": meta})

    def done(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
