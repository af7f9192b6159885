"""The `corrald` command: run the daemon, or talk to a running one like `lxd <subcommand>`."""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import click
import yaml

from corral import __version__, LXD_VERSION
from corral.paths import Paths


def _client(timeout: float | None = None):
    from corral.cli.client import Client
    return Client(socket_path=Paths.from_env().socket, timeout=timeout)


def _setup_logging(debug: bool, logfile: str | None) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        handlers.append(logging.FileHandler(logfile))
    from corral import logthrottle
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(logthrottle.install(h))
    for noisy in ("aiohttp.access", "dqliteclient", "dqlitewire", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(invoke_without_command=True)
@click.option("--debug", is_flag=True, help="Log debug messages.")
@click.option("--logfile", default=None, help="Log file (default $CORRAL_DIR/logs/corrald.log).")
@click.option("--group", default=None, help="Group that may use the unix socket.")
@click.pass_context
def main(ctx: click.Context, debug: bool, logfile: str | None, group: str | None) -> None:
    """corrald: the Corral daemon (LXD's API). Without a subcommand, runs in the foreground."""
    if ctx.invoked_subcommand is not None:
        return
    if os.geteuid() != 0:
        raise click.ClickException("corrald must run as root")
    paths = Paths.from_env()
    _setup_logging(debug, logfile or paths.join("logs", "corrald.log"))
    from corral.daemon import Daemon
    from corral.netguard import raise_nofile

    nofile = raise_nofile()
    logging.getLogger("corrald").info("file descriptor limit: %d", nofile)

    try:
        asyncio.run(Daemon(paths, group=group).run())
    except RuntimeError as e:
        logging.getLogger("corrald").error("%s", e)
        sys.exit(1)


@main.command()
def version() -> None:
    """Print the version."""
    click.echo(f"{__version__} (LXD API {LXD_VERSION})")


@main.command()
@click.option("--timeout", default=0, type=int, help="Seconds to wait (0: forever).")
def waitready(timeout: int) -> None:
    """Wait until the daemon is ready to answer requests."""
    from corral.cli.client import ClientError
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        try:
            _client(timeout=5).get("/internal/ready")
            return
        except (ClientError, OSError):
            pass
        if deadline is not None and time.monotonic() > deadline:
            raise click.ClickException("Daemon still not running after {}s timeout".format(timeout))
        time.sleep(0.05)


@main.command()
@click.option("--timeout", default=0, type=int, help="Seconds to wait for the daemon to exit (0: forever).")
def shutdown(timeout: int) -> None:
    """Ask the daemon to shut down (it waits for running operations) and wait for it to exit."""
    from corral.cli.client import ClientError
    client = _client(timeout=10)
    try:
        pid = client.metadata("/1.0")["environment"]["server_pid"]
        client.put("/internal/shutdown")
    except (ClientError, OSError) as e:
        raise click.ClickException(f"Failed to shut down the daemon: {e}")
    deadline = time.monotonic() + timeout if timeout else None
    # The socket goes away first; the process exits once running operations are done.
    while _alive(pid):
        if deadline is not None and time.monotonic() > deadline:
            raise click.ClickException(f"Daemon still running after {timeout}s timeout")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, not yet reaped by its parent, has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@main.command()
@click.argument("database", type=click.Choice(["local", "global"]))
@click.argument("query")
def sql(database: str, query: str) -> None:
    """Run a SQL query against the local or global database (like `lxd sql`); '-' reads stdin."""
    from corral.cli.client import ClientError
    if query == "-":
        query = sys.stdin.read()
    try:
        results = _client().post("/internal/sql", {"database": database, "query": query})["metadata"]["results"]
    except (ClientError, OSError) as e:
        raise click.ClickException(str(e))
    for res in results:
        if res["type"] == "exec":
            click.echo(f"Rows affected: {res['rows_affected']}")
            continue
        _print_table(res["columns"], res["rows"])


def _print_table(columns: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in columns]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    click.echo(sep)
    for n, row in enumerate(cells):
        click.echo("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |")
        if n == 0:
            click.echo(sep)
    click.echo(sep)


@main.command()
@click.option("--auto", is_flag=True, help="Set up a default configuration without asking.")
@click.option("--preseed", is_flag=True, help="Read an LXD preseed YAML document from stdin.")
def init(auto: bool, preseed: bool) -> None:
    """Configure the daemon (LXD's `lxd init --auto|--preseed`)."""
    from corral.cli.client import ClientError
    from corral.preseed import apply_preseed, auto_preseed, parse_preseed
    if auto == preseed:
        raise click.ClickException("Use exactly one of --auto and --preseed")
    try:
        client = _client()
        doc = auto_preseed(client) if auto else parse_preseed(sys.stdin.read())
        apply_preseed(client, doc)
    except (ClientError, OSError, ValueError, yaml.YAMLError) as e:
        raise click.ClickException(str(e))


if __name__ == "__main__":
    main()
