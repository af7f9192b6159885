"""`corrald recover`: LXD 5.0.2's interactive recovery of instances whose database records are lost,
from the backup.yaml their volumes carry (server side: corral/instance/dbrecover.py).

Its questions and messages are LXD's, answered on stdin (scripts pipe the answers in, as LXD's test
suite does). Differences: recovering a storage pool the database does not know is refused with a
clear error, and end of input at "hit ENTER" stops with `Error: EOF` (LXD asks again forever).
"""
from __future__ import annotations

import sys

import click

from corral.lxdcmd.cli import CONTEXT, client, fail, global_options, setup_client_logging


def _ask(question: str) -> str:
    click.echo(question, nl=False)
    line = sys.stdin.readline()
    if not line:
        fail("EOF")   # as LXD's asker; click would turn an EOFError into "Aborted"
    return line.rstrip("\n").strip()


def ask_bool(question: str, default: str) -> bool:
    while True:
        answer = _ask(question) or default
        if answer.lower() in ("yes", "y"):
            return True
        if answer.lower() in ("no", "n"):
            return False
        click.echo("Invalid input, try again.\n", err=True)


def _pool_line(p: dict) -> str:
    return f'(backend="{p.get("driver")}", source="{(p.get("config") or {}).get("source", "")}")'


@click.command(context_settings=CONTEXT,
               short_help="Recover missing instances and volumes from existing and unknown storage pools")
@click.argument("args", nargs=-1)
@global_options
def recover(args) -> None:
    """Description:
    Recover missing instances and volumes from existing and unknown storage pools

    This command is mostly used for disaster recovery. It will ask you about unknown storage pools and
    attempt to access them, along with existing storage pools, and identify any missing instances and
    volumes that exist on the pools but are not in the LXD database. It will then offer to recreate these
    database records."""
    from corral import client as rest
    setup_client_logging()
    if args:
        fail("Invalid arguments")
    c = client()
    try:
        pools = c.metadata("/1.0/storage-pools", params={"recursion": "1"}) or []
    except (rest.ClientError, OSError) as e:
        fail(f"Failed getting existing storage pools: {e}")
    click.echo("This LXD server currently has the following storage pools:")
    for p in pools:
        click.echo(f" - {p['name']} {_pool_line(p)}")
    if ask_bool("Would you like to recover another storage pool? (yes/no) [default=no]: ", "no"):
        fail("not implemented: recovering a storage pool the database does not know (corrald recovers the "
             "instances of its existing storage pools)")
    click.echo("The recovery process will be scanning the following storage pools:")
    for p in pools:
        click.echo(f' - EXISTING: "{p["name"]}" {_pool_line(p)}')
    if not ask_bool("Would you like to continue with scanning for lost volumes? (yes/no) [default=yes]: ", "yes"):
        return
    click.echo("Scanning for unknown volumes...")
    req = {"pools": [{"name": p["name"]} for p in pools]}
    while True:
        try:
            res = c.post("/internal/recover/validate", req)["metadata"] or {}
        except (rest.ClientError, OSError) as e:
            fail(f"Failed validation request: {e}")
        unknown, deps = res.get("UnknownVolumes") or [], res.get("DependencyErrors") or []
        if unknown:
            click.echo("The following unknown volumes have been found:")
            for v in unknown:
                click.echo(f' - {v["type"].title()} "{v["name"]}" on pool "{v["pool"]}" in project '
                           f'"{v["project"]}" (includes {v["snapshotCount"]} snapshots)')
        if deps:
            click.echo("You are currently missing the following:")
            for dep in deps:
                click.echo(f" - {dep}")
            _ask("Please create those missing entries and then hit ENTER: ")
            continue
        if not unknown:
            click.echo("No unknown volumes found. Nothing to do.")
            return
        break
    if not ask_bool("Would you like those to be recovered? (yes/no) [default=no]: ", "no"):
        return
    click.echo("Starting recovery...")
    try:
        res = c.post("/internal/recover/import", req)["metadata"] or {}
    except (rest.ClientError, OSError) as e:
        fail(f"Failed import request: {e}")
    if res.get("DependencyErrors"):
        fail("Failed import request: missing " + ", ".join(res["DependencyErrors"]))
