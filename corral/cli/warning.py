"""`corral warning`: list, show, acknowledge and delete warnings (lxc's warning.go)."""

from __future__ import annotations

import click

from corral.cli.base import client_of, flag, format_opt, lxc_command, name_of, option, parse_remote, q
from corral.cli.main import Ctx, fail, group
from corral.cli.output import format_time_long, mark_times, print_list, to_yaml

# api.Warning's field order (WarningPut first, then Warning's own).
FIELDS = ("status", "uuid", "location", "project", "type", "count", "first_seen_at", "last_seen_at",
          "last_message", "severity", "entity_url")

COLUMNS = {
    "c": ("COUNT", lambda w: str(w.get("count", 0))),
    "l": ("LAST SEEN", lambda w: format_time_long(w.get("last_seen_at"))),
    "L": ("LOCATION", lambda w: w.get("location", "")),
    "f": ("FIRST SEEN", lambda w: format_time_long(w.get("first_seen_at"))),
    "p": ("PROJECT", lambda w: w.get("project", "")),
    "s": ("SEVERITY", lambda w: str(w.get("severity", "")).upper()),
    "S": ("STATUS", lambda w: str(w.get("status", "")).upper()),
    "u": ("UUID", lambda w: w.get("uuid", "")),
    "t": ("TYPE", lambda w: w.get("type", "")),
}

LIST_HELP = """List warnings.

\b
The -c option takes a (optionally comma-separated) list of arguments
that control which warning attributes to output when displaying in table
or csv format.

\b
Default column layout is: utSscpLl

\b
Column shorthand chars:

    c - Count
    l - Last seen
    L - Location
    f - First seen
    p - Project
    s - Severity
    S - Status
    u - UUID
    t - Type"""


def ordered(w: dict) -> dict:
    out = {k: w[k] for k in FIELDS if k in w}
    out.update({k: v for k, v in w.items() if k not in out})
    return out


@group()
def warning() -> None:
    """Manage warnings."""


@lxc_command(warning, "list", "[<remote>:]", LIST_HELP,
             "corral warning list\n    List the warnings that are not resolved.\n\n"
             "corral warning list --all -c utsl\n    List all warnings with a few columns.",
             aliases=("ls",), max_args=1,
             options=(flag("-a", "--all", "all_", help="List all warnings"),
                      option("-c", "--columns", default="utSscpLl", show_default=True, help="Columns"),
                      format_opt()))
def warning_list(ctx: Ctx, args: list[str], all_: bool, columns: str, fmt: str) -> None:
    client = client_of(ctx, args[0]) if args else ctx.client
    if args:
        parse_remote(args[0])
    warnings = client.metadata("/1.0/warnings", params={"recursion": 1}) or []
    if not all_:
        warnings = [w for w in warnings if w.get("status") != "resolved"]
    clustered = client.is_clustered()
    cols = []
    for char in columns.replace(",", ""):
        if char not in COLUMNS:
            fail(f"Unknown column shorthand char '{char}' in '{columns}'")
        if char == "L" and not clustered:
            if columns != "utSscpLl":
                fail("Can't specify column L when not clustered")
            continue
        cols.append(COLUMNS[char])
    warnings = [ordered(w) for w in warnings]
    rows = [[fn(w) for _, fn in cols] for w in warnings]
    print_list(fmt, [h for h, _ in cols], rows, mark_times(warnings))


@lxc_command(warning, "show", "[<remote>:]<warning-uuid>", "Show warning.",
             "corral warning show <uuid>\n    Show a warning in full.", min_args=1, max_args=1)
def warning_show(ctx: Ctx, args: list[str]) -> None:
    obj = client_of(ctx, args[0]).metadata(f"/1.0/warnings/{q(name_of(args[0]))}") or {}
    click.echo(to_yaml(ordered(obj), typed=True), nl=False)


@lxc_command(warning, "acknowledge", "[<remote>:]<warning-uuid>", "Acknowledge warning.",
             "corral warning acknowledge <uuid>\n    Mark a warning as seen.", aliases=("ack",),
             min_args=1, max_args=1)
def warning_ack(ctx: Ctx, args: list[str]) -> None:
    client_of(ctx, args[0]).put(f"/1.0/warnings/{q(name_of(args[0]))}", {"status": "acknowledged"})


@lxc_command(warning, "delete", "[<remote>:]<warning-uuid>", "Delete warning.",
             "corral warning delete <uuid>\n    Delete one warning.\n\ncorral warning delete --all\n"
             "    Delete all warnings.", aliases=("rm",), max_args=1,
             options=(flag("-a", "--all", "all_", help="Delete all warnings"),))
def warning_delete(ctx: Ctx, args: list[str], all_: bool) -> None:
    if not args and not all_:
        click.echo(click.get_current_context().get_help())
        return
    if all_ and args and not args[0].endswith(":"):
        fail("Specify either --all or a UUID")
    client = client_of(ctx, args[0]) if args else ctx.client
    if all_:
        for w in client.metadata("/1.0/warnings") or []:
            client.delete(f"/1.0/warnings/{w.rstrip('/').rsplit('/', 1)[-1]}")
        return
    client.delete(f"/1.0/warnings/{q(name_of(args[0]))}")


__all__ = ["warning"]
