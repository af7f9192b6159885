"""`corrald version|waitready|shutdown|import|manpage` and LXD's internal commands (`cluster`: cluster.py)."""
from __future__ import annotations

import time

import click

from corral import LXD_VERSION
from corral.lxdcmd.cli import CONTEXT, client, fail, global_options, setup_client_logging
from corral.lxdcmd.cluster import cluster


@click.command(context_settings=CONTEXT, short_help="Show the server version")
@global_options
def version() -> None:
    """Description:
    Show the server version (the LXD release whose API corrald implements)."""
    setup_client_logging()
    click.echo(LXD_VERSION)


@click.command(context_settings=CONTEXT, short_help="Wait for LXD to be ready to process requests")
@click.option("-t", "--timeout", default=0, type=int, help="Number of seconds to wait before giving up")
@global_options
def waitready(timeout: int) -> None:
    """Description:
    Wait for LXD to be ready to process requests

      This command will block until LXD is
    reachable over its REST API and is done with early start tasks like re-starting previously started
    containers."""
    from corral import client as rest
    setup_client_logging()
    deadline = time.monotonic() + timeout if timeout > 0 else None
    last: Exception | None = None
    while True:
        try:
            client(timeout=5).get("/internal/ready")
            return
        except (rest.ClientError, OSError) as e:
            last = e
        if deadline is not None and time.monotonic() > deadline:
            fail(f"LXD still not running after {timeout}s timeout ({last})")
        time.sleep(0.05)


@click.command(context_settings=CONTEXT, short_help="Tell the daemon to shut down and exit")
@click.option("-f", "--force", is_flag=True, help="Force shutdown instead of waiting for running operations to finish")
@click.option("-t", "--timeout", default=0, type=int, help="Number of seconds to wait before giving up")
@global_options
def shutdown(force: bool, timeout: int) -> None:
    """Description:
    Tell the daemon to shut down and exit

    It stops accepting requests, lets running operations finish (up to core.shutdown_timeout, or not at
    all with --force) and exits. Unlike LXD, corrald leaves the containers running: the next corrald
    adopts them."""
    from corral import client as rest
    setup_client_logging()
    c = client(timeout=10)
    try:
        pid = c.metadata("/1.0")["environment"]["server_pid"]
        c.put("/internal/shutdown", params={"force": "true" if force else "false"})
    except (rest.ClientError, OSError) as e:
        fail(str(e))
    deadline = time.monotonic() + timeout if timeout > 0 else None
    # The socket goes away first; the process exits once running operations are done.
    while _alive(pid):
        if deadline is not None and time.monotonic() > deadline:
            fail(f"LXD still running after {timeout}s timeout")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, not yet reaped by its parent, has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@click.command("import", context_settings=CONTEXT, short_help='Command has been replaced with "lxd recover"',
               add_help_option=True)
@click.argument("args", nargs=-1)
@global_options
def import_(args) -> None:
    """Description:
    This command has been replaced with "lxd recover". Please use that instead."""
    fail('Command has been replaced with "lxd recover"')


@click.command(context_settings=CONTEXT, hidden=True, short_help="Generate manpages for all commands")
@click.argument("target", required=False)
@global_options
def manpage(target: str | None) -> None:
    """Description:
    Generate manpages for all commands"""
    fail("not implemented: generating manpages (corrald has no manpages; use --help)")


# LXD's internal commands: liblxc hooks and helper processes of LXD itself. corrald runs its containers
# through liblxc's Python binding and its own helpers, so nothing calls these.
INTERNAL = ("callhook", "forkcoresched", "forkdns", "forkexec", "forkfile", "forklimits", "forkmigrate",
            "forkmount", "forknet", "forkproxy", "forkstart", "forksyscall", "forkuevent", "migratedumpsuccess",
            "netcg")


def _internal(name: str) -> click.Command:
    def run(args) -> None:
        fail(f'"{name}" is an internal command of LXD (its own helper processes call it); '
             "corrald does not use it and does not implement it")
    cmd = click.command(name, context_settings={**CONTEXT, "ignore_unknown_options": True}, hidden=True)(
        click.argument("args", nargs=-1, type=click.UNPROCESSED)(run))
    return cmd


@click.command("help", context_settings=CONTEXT, short_help="Help about any command")
@click.argument("command", nargs=-1)
@click.pass_context
def help_(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Description:
    Help provides help for any command in the application."""
    cmd, cur = ctx.find_root().command, ctx.find_root()
    for name in command:
        sub = cmd.get_command(cur, name) if isinstance(cmd, click.Group) else None
        if sub is None:
            fail(f'Unknown help topic [{" ".join(repr(c) for c in command)}]')
        cur, cmd = click.Context(sub, info_name=name, parent=cur), sub
    click.echo(cur.get_help())


COMMANDS = [version, waitready, shutdown, import_, cluster, manpage, help_] + [_internal(n) for n in INTERNAL]
