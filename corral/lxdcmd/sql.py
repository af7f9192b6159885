"""`corrald sql <local|global> <query>`: LXD 5.0.2's output, byte for byte.

Several statements: each result after `=> Query N:` and a blank line, then a blank line. A SELECT is a
table (headers centred, cells left-aligned); other statements print `Rows affected: N`. Values print as
Go's fmt.Sprint prints what LXD's client decodes from JSON: numbers as float64 (`1e+06`), NULL as `<nil>`.
`.dump` and `.schema` print an SQL text dump; `-` reads the query from stdin.
"""
from __future__ import annotations

import sys
from decimal import Decimal

import click

from corral.lxdcmd.cli import CONTEXT, client, fail, global_options, setup_client_logging

HELP = """Description:
  Execute a SQL query against the LXD local or global database

  The local database is specific to the LXD cluster member you target the
  command to, and contains member-specific data (such as the member network
  address).

  The global database is common to all LXD members in the cluster, and contains
  cluster-specific data (such as profiles, containers, etc).

  If you are running a non-clustered LXD instance, the same applies, as that
  instance is effectively a single-member cluster.

  If <query> is the special value "-", then the query is read from
  standard input.

  If <query> is the special value ".dump", the command returns a SQL text
  dump of the given database.

  If <query> is the special value ".schema", the command returns the SQL
  text schema of the given database.

  This internal command is mostly useful for debugging and disaster
  recovery. The LXD team will occasionally provide hotfixes to users as a
  set of database queries to fix some data inconsistency.

  This command targets the global LXD database and works in both local
  and cluster mode."""


@click.command(context_settings=CONTEXT, hidden=True, help="\b\n" + HELP.replace("\n\n", "\n\n\b\n"), options_metavar="",
               short_help="Execute a SQL query against the LXD local or global database")
@click.argument("args", nargs=-1, metavar="<local|global> <query>")
@global_options
@click.pass_context
def sql(ctx: click.Context, args: tuple[str, ...]) -> None:
    from corral import client as rest
    setup_client_logging()
    if len(args) != 2:
        click.echo(ctx.get_help())
        if not args:
            return
        fail("Missing required arguments")
    database, query = args
    if database not in ("local", "global"):
        click.echo(ctx.get_help())
        fail("Invalid database type")
    if query == "-":
        query = sys.stdin.read()
    try:
        if query in (".dump", ".schema"):
            params = {"database": database, **({"schema": "1"} if query == ".schema" else {})}
            meta = client().get("/internal/sql", params=params)["metadata"]
            click.echo(meta["text"], nl=False)
            return
        meta = client().post("/internal/sql", {"database": database, "query": query})["metadata"]
    except (rest.ClientError, OSError) as e:
        fail(str(e))
    results = meta.get("Results") or meta.get("results") or []
    for i, res in enumerate(results):
        if len(results) > 1:
            click.echo(f"=> Query {i}:\n")
        if res["type"] == "select":
            click.echo(render_table(res["columns"] or [], res["rows"] or []), nl=False)
        else:
            click.echo(f"Rows affected: {res['rows_affected']}")
        if len(results) > 1:
            click.echo("")


def go_sprint(v) -> str:
    """fmt.Sprint of a JSON-decoded value (numbers are float64 in Go)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return go_float(float(v))
    return str(v)


def go_float(f: float) -> str:
    """Go's %v for a float64: shortest digits, exponent form when the exponent is < -4 or >= 6 (%g, shortest)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    e10 = len(ds) + exp - 1
    neg = "-" if sign else ""
    if e10 < -4 or e10 >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if e10 < 0 else '+'}{abs(e10):02d}"
    if exp >= 0:
        return neg + ds + "0" * exp
    point = len(ds) + exp
    if point > 0:
        return neg + ds[:point] + "." + ds[point:]
    return neg + "0." + "0" * (-point) + ds


def render_table(columns: list, rows: list[list]) -> str:
    """tablewriter as LXD uses it: +---+ borders, centred headers, left-aligned cells, multi-line cells."""
    head = [str(c) for c in columns]
    body = [[go_sprint(v).split("\n") for v in r] for r in rows]
    n = len(head)
    widths = [max([len(head[i])] + [len(line) for r in body for line in r[i]]) for i in range(n)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [sep, "|" + "|".join(" " + _center(h, w) + " " for h, w in zip(head, widths)) + "|", sep]
    for r in body:
        height = max([len(c) for c in r] or [1])
        for k in range(height):
            out.append("|" + "|".join(" " + (r[i][k] if k < len(r[i]) else "").ljust(widths[i]) + " "
                                      for i in range(n)) + "|")
    out.append(sep)
    return "\n".join(out) + "\n"


def _center(s: str, width: int) -> str:
    gap = width - len(s)
    left = gap // 2
    return " " * left + s + " " * (gap - left)
