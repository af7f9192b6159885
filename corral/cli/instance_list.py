"""`list`: the instance table, its columns, filters and formats (lxc's list.go)."""

from __future__ import annotations

import re
from typing import Any, Callable

import click

from corral.cli.main import Ctx, fail, pass_ctx
from corral.cli.output import FORMATS, format_bytes_iec, format_time_short, print_list, render_list, to_yaml
from corral.cli.instance import cmd



def _active(inst: dict) -> bool:
    state = inst.get("state") or {}
    return bool(state) and str(inst.get("status", "")).lower() not in ("stopped", "error", "")


def _ips(inst: dict, family: str) -> str:
    if not _active(inst):
        return ""
    out = []
    for ifname, net in sorted(((inst.get("state") or {}).get("network") or {}).items()):
        if net.get("type") == "loopback":
            continue
        for addr in net.get("addresses") or []:
            if addr.get("scope") in ("link", "local"):
                continue
            if addr.get("family") == family:
                out.append(f"{addr.get('address')} ({ifname})")
    out.sort(reverse=True)
    return "\n".join(out)


def _type(inst: dict) -> str:
    text = str(inst.get("type") or "container").upper()
    if inst.get("ephemeral"):
        text += " (EPHEMERAL)"
    return text


def _root_pool(inst: dict) -> str:
    for dev in (inst.get("expanded_devices") or {}).values():
        if dev.get("type") == "disk" and dev.get("path") == "/":
            return dev.get("pool", "")
    return ""


def _state(inst: dict) -> dict:
    return inst.get("state") or {}


def _mem(inst: dict) -> str:
    usage = (_state(inst).get("memory") or {}).get("usage") or 0
    return format_bytes_iec(usage) if _active(inst) and usage else ""


def _mem_pct(inst: dict) -> str:
    mem = _state(inst).get("memory") or {}
    usage, total = mem.get("usage") or 0, mem.get("total") or 0
    return f"{usage / total * 100:.2f}%" if _active(inst) and total else ""


def _disk(inst: dict) -> str:
    root = (_state(inst).get("disk") or {}).get("root") or {}
    return format_bytes_iec(root["usage"]) if root.get("usage") else ""


def _cpu(inst: dict) -> str:
    usage = (_state(inst).get("cpu") or {}).get("usage") or 0
    return f"{usage // 1000000000}s" if _active(inst) and usage else ""


COLUMNS: dict[str, tuple[str, Callable[[dict], str]]] = {
    "4": ("IPV4", lambda i: _ips(i, "inet")),
    "6": ("IPV6", lambda i: _ips(i, "inet6")),
    "a": ("ARCHITECTURE", lambda i: i.get("architecture", "")),
    "b": ("STORAGE POOL", _root_pool),
    "c": ("CREATED AT", lambda i: format_time_short(i.get("created_at"))),
    "d": ("DESCRIPTION", lambda i: i.get("description", "")),
    "D": ("DISK USAGE", _disk),
    "e": ("PROJECT", lambda i: i.get("project", "")),
    "f": ("BASE IMAGE", lambda i: (i.get("config") or {}).get("volatile.base_image", "")[:12]),
    "F": ("BASE IMAGE", lambda i: (i.get("config") or {}).get("volatile.base_image", "")),
    "l": ("LAST USED AT", lambda i: format_time_short(i.get("last_used_at"))),
    "L": ("LOCATION", lambda i: i.get("location", "")),
    "m": ("MEMORY USAGE", _mem),
    "M": ("MEMORY USAGE%", _mem_pct),
    "n": ("NAME", lambda i: i.get("name", "")),
    "N": ("PROCESSES", lambda i: str(_state(i).get("processes", "")) if _active(i) else ""),
    "p": ("PID", lambda i: str(_state(i).get("pid", "")) if _active(i) else ""),
    "P": ("PROFILES", lambda i: "\n".join(i.get("profiles") or [])),
    "s": ("STATE", lambda i: str(i.get("status", "")).upper()),
    "S": ("SNAPSHOTS", lambda i: str(len(i.get("snapshots") or []))),
    "t": ("TYPE", _type),
    "u": ("CPU USAGE", _cpu),
}

DEFAULT_COLUMNS = "ns46tSL"
FAST_COLUMNS = "nsacPt"


def parse_columns(spec: str, clustered: bool, default: bool) -> list[tuple[str, Callable[[dict], str]]]:
    """lxc's -c: shorthand letters, and comma separated entries; an entry with
    a '.' is a custom column [config:|devices:]KEY[:NAME[:MAXWIDTH]]."""
    if default and not clustered:
        spec = spec.replace("L", "")
    cols: list[tuple[str, Callable[[dict], str]]] = []
    for entry in spec.split(","):
        if not entry:
            fail(f"Empty column entry (redundant, leading or trailing command) in '{spec}'")
        if "." in entry:
            cols.append(_custom_column(entry))
            continue
        for letter in entry:
            if letter not in COLUMNS:
                fail(f"Unknown column shorthand char '{letter}' in '{entry}'")
            cols.append(COLUMNS[letter])
    return cols


def _custom_column(entry: str) -> tuple[str, Callable[[dict], str]]:
    kind = "config"
    body = entry
    for prefix in ("config:", "devices:"):
        if entry.startswith(prefix):
            kind, body = prefix[:-1], entry[len(prefix):]
    parts = body.split(":")
    if len(parts) > 3:
        fail(f"Invalid config key column format (too many fields): '{entry}'")
    key = parts[0]
    if not key:
        fail(f"Invalid config key column format: '{entry}'")
    name = parts[1] if len(parts) > 1 and parts[1] else key.upper().replace(".", " ")
    width = 0
    if len(parts) == 3 and parts[2]:
        try:
            width = int(parts[2])
        except ValueError:
            fail(f"Invalid max width (must be an integer) '{parts[2]}' in '{entry}'")

    def getter(inst: dict) -> str:
        if kind == "devices":
            dev, _, dkey = key.partition(".")
            value = ((inst.get("expanded_devices") or {}).get(dev) or {}).get(dkey, "")
        else:
            value = (inst.get("expanded_config") or {}).get(key, (inst.get("config") or {}).get(key, ""))
        return value[:width] if width > 0 else value

    return name, getter


def _filter_match(inst: dict, filters: tuple[str, ...]) -> bool:
    for flt in filters:
        if "=" in flt:
            key, value = flt.split("=", 1)
            if key in ("status", "state"):
                if str(inst.get("status", "")).lower() != value.lower():
                    return False
                continue
            if key == "type":
                if str(inst.get("type", "")).lower() != value.lower():
                    return False
                continue
            cfg = inst.get("expanded_config") or inst.get("config") or {}
            if cfg.get(key) != value:
                return False
        else:
            name = inst.get("name", "")
            try:
                if re.match(flt, name) is None and not name.startswith(flt):
                    return False
            except re.error:
                if not name.startswith(flt):
                    return False
    return True


@cmd("list")
@click.argument("filters", nargs=-1)
@click.option("-c", "--columns", default=DEFAULT_COLUMNS, show_default=True, help="Columns")
@click.option("--fast", is_flag=True, help="Fast mode (same as --columns=nsacPt)")
@click.option("-f", "--format", "fmt", default="table", type=click.Choice(FORMATS), show_default=True,
              help="Format (csv|json|table|yaml|compact)")
@click.option("--all-projects", is_flag=True, help="Display instances from all projects")
@pass_ctx
def list_(ctx: Ctx, filters: tuple[str, ...], columns: str, fast: bool, fmt: str, all_projects: bool) -> None:
    from corral.cli.base import strip_first_remote
    filters = strip_first_remote(filters)
    """List instances.

    Default columns: ns46tSL (name, state, IPv4, IPv6, type, snapshots,
    location when clustered).  Column letters: 4 6 a b c d D e f F l L m M n
    N p P s S t u, or custom KEY[:NAME[:MAXWIDTH]] entries."""
    client = ctx.client
    params: dict[str, Any] = {"recursion": 2}
    if all_projects:
        params["all-projects"] = "true"
    instances = client.metadata("/1.0/instances", params=params) or []
    instances = [i for i in instances if _filter_match(i, filters)]
    instances.sort(key=lambda i: i.get("name", ""))
    if fast:
        columns = FAST_COLUMNS
    default = columns == DEFAULT_COLUMNS
    clustered = client.is_clustered() if "L" in columns and fmt in ("table", "compact", "csv") else False
    cols = parse_columns(columns, clustered, default)
    if all_projects and default:
        cols.insert(0, COLUMNS["e"])
    headers = [c[0] for c in cols]
    rows = [[getter(inst) for _, getter in cols] for inst in instances]
    if fmt in ("json", "yaml"):
        click.echo(render_list(fmt, headers, rows, instances) if fmt == "json" else to_yaml(instances, typed=True),
                   nl=False)
        return
    print_list(fmt, headers, rows, instances)
