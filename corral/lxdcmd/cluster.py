"""`corrald cluster ...`: LXD 5.0's low-level cluster tools (lxd/main_cluster.go), same help texts,
flags, prompts, outputs and errors.

list-database and show read the local database (they work with or without a daemon, as LXD's do);
edit and recover-from-quorum-loss change the raft configuration offline and refuse to run while the
daemon answers; remove-raft-node asks the running daemon (DELETE /internal/cluster/raft-node/ADDRESS).
The work itself is in corral/cluster/recovery.py.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import click

from corral.lxdcmd.cli import CONTEXT, LXDGroup, client, fail, global_options, setup_client_logging

RECOVER_PROMPT = """You should run this command only if you are *absolutely* certain that this is
the only database node left in your cluster AND that other database nodes will
never come back (i.e. their LXD daemon won't ever be started again).

This will make this LXD instance the only member of the cluster, and it won't
be possible to perform operations on former cluster members anymore.

However all information about former cluster members will be preserved in the
database, so you can possibly inspect it for further recovery.

You'll be able to permanently delete from the database all information about
former cluster members by running "lxc cluster remove <member-name> --force".

See https://linuxcontainers.org/lxd/docs/master/clustering#recover-from-quorum-loss for more
info.

Do you want to proceed? (yes/no): """

REMOVE_PROMPT = """You should run this command only if you ended up in an
inconsistent state where a node has been uncleanly removed (i.e. it doesn't show
up in "lxc cluster list" but it's still in the raft configuration).

Do you want to proceed? (yes/no): """


def _help(text: str) -> str:
    return "\b\nDescription:\n  " + text


def _paths():
    from corral.paths import Paths
    return Paths.from_env()


def _refuse_if_running(paths) -> None:
    from corral.cluster import recovery
    if recovery.daemon_running(paths):
        fail(recovery.DAEMON_RUNNING)


def _open_local(paths, wrap: str | None = None):
    from corral.cluster.recovery import RecoveryError, open_local
    try:
        return open_local(paths)
    except RecoveryError as e:
        fail(f"{wrap}: {e}" if wrap else str(e))


def _confirm(prompt: str, aborted: str) -> None:
    """LXD's promptConfirmation: anything but "yes" (case-insensitive, EOF included) aborts."""
    click.echo(prompt, nl=False)
    line = sys.stdin.readline()
    if line.endswith("\n"):
        line = line[:-1]
    if line.lower() != "yes":
        fail(aborted)


@click.group(cls=LXDGroup, context_settings=CONTEXT, invoke_without_command=True,
             short_help="Low-level cluster administration commands",
             help=_help("Low level administration tools for inspecting and recovering LXD clusters."))
@global_options
@click.pass_context
def cluster(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@click.command("list-database", context_settings=CONTEXT,
               short_help="Print the addresses of the cluster members serving the database",
               help=_help("Print the addresses of the cluster members serving the database")
                    + "\n\n\b\nAliases:\n  list-database, ls")
@global_options
def list_database() -> None:
    from corral.cluster.recovery import RecoveryError, list_database as addresses
    from corral.lxdcmd.sql import render_table
    setup_client_logging()
    local = _open_local(_paths(), "Failed to open local database")
    try:
        rows = addresses(local)
    except RecoveryError as e:
        fail(f"Failed to get database nodes: {e}")
    finally:
        local.close()
    click.echo(_row_lined(render_table(["ADDRESS"], [[a] for a in rows]), len(rows)), nl=False)


def _row_lined(table: str, nrows: int) -> str:
    """utils.RenderTable's "table" format draws a line under every row (tablewriter SetRowLine)."""
    lines = table.splitlines()
    if nrows == 0:
        return "\n".join(lines[:3]) + "\n"
    sep = lines[0]
    out = lines[:3]
    for row in lines[3:-1]:
        out += [row, sep]
    return "\n".join(out) + "\n"


def _show_text(paths, nodes: list[dict], with_comment: bool) -> str:
    from corral.cluster.recovery import SEGMENT_COMMENT, RecoveryError, latest_segment, render_config
    try:
        segment = latest_segment(paths.global_db)
    except RecoveryError as e:
        fail(str(e))
    data = render_config(nodes)
    if nodes and with_comment:
        return SEGMENT_COMMENT.format(segment) + "\n\n" + data
    return data


@click.command("show", context_settings=CONTEXT, short_help="Show cluster configuration as YAML",
               help=_help("Show cluster configuration as YAML."))
@global_options
def show() -> None:
    setup_client_logging()
    paths = _paths()
    local = _open_local(paths)
    try:
        nodes = local.raft_nodes()
    finally:
        local.close()
    click.echo(_show_text(paths, nodes, True), nl=False)


@click.command("edit", context_settings=CONTEXT, short_help="Edit cluster configuration as YAML",
               help=_help("Edit cluster configuration as YAML."))
@global_options
def edit() -> None:
    from corral.cluster.recovery import RecoveryError, parse_config, reconfigure, validate
    setup_client_logging()
    paths = _paths()
    _refuse_if_running(paths)
    local = _open_local(paths)
    try:
        if not local.get_config().get("cluster.https_address"):
            fail("Can't edit cluster configuration as server isn't clustered "
                 '(missing "cluster.https_address" config)')
        nodes = local.raft_nodes()
        tty = _stdin_is_tty()
        text = _show_text(paths, nodes, tty)
        content = _text_editor(text) if tty else sys.stdin.read()
        while True:
            try:
                new = parse_config(content)
                validate(nodes, new)
                reconfigure(paths, local, new)
                return
            except RecoveryError as e:
                click.echo(f"Config validation error: {e}", err=True)
            click.echo("Press enter to open the editor again or ctrl+c to abort change")
            if not sys.stdin.read(1):
                fail("EOF")
            content = _text_editor(content)
    finally:
        local.close()


def _stdin_is_tty() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def _text_editor(text: str) -> str:
    """LXD's shared.TextEditor: $VISUAL, $EDITOR, else the first of editor/vi/emacs/nano, on a
    temporary file; what was saved."""
    cmd = None
    for var in ("VISUAL", "EDITOR"):
        if os.environ.get(var):
            cmd = shlex.split(os.environ[var])
            break
    if cmd is None:
        found = next((p for p in map(shutil.which, ("editor", "vi", "emacs", "nano")) if p), None)
        if found is None:
            fail("No text editor found, please set the EDITOR environment variable")
        cmd = [found]
    fd, path = tempfile.mkstemp(prefix="lxd_editor_", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            rc = subprocess.call([*cmd, path])
        except OSError as e:
            fail(str(e))
        if rc != 0:
            fail(f"exit status {rc}")
        with open(path) as f:
            return f.read()
    finally:
        os.unlink(path)


@click.command("recover-from-quorum-loss", context_settings=CONTEXT,
               short_help="Recover a LXD instance whose cluster has lost quorum",
               help=_help("Recover a LXD instance whose cluster has lost quorum"))
@click.option("-q", "--quiet", is_flag=True, help="Don't require user confirmation")
@global_options
def recover_from_quorum_loss(quiet: bool) -> None:
    from corral.cluster.recovery import RecoveryError, recover
    setup_client_logging()
    paths = _paths()
    _refuse_if_running(paths)
    if not quiet:
        _confirm(RECOVER_PROMPT, "Recover operation aborted")
    local = _open_local(paths, "Failed to open local database")
    try:
        recover(paths, local)
    except RecoveryError as e:
        fail(str(e))
    finally:
        local.close()


@click.command("remove-raft-node", context_settings=CONTEXT, options_metavar="<address> [flags]",
               short_help="Remove a raft node from the raft configuration",
               help=_help("Remove a raft node from the raft configuration"))
@click.argument("args", nargs=-1, metavar="")
@click.option("-q", "--quiet", is_flag=True, help="Don't require user confirmation")
@global_options
@click.pass_context
def remove_raft_node(ctx: click.Context, args: tuple[str, ...], quiet: bool) -> None:
    from urllib.parse import quote

    from corral import client as rest
    from corral.cluster.recovery import canonical_address
    setup_client_logging()
    if len(args) != 1:
        click.echo(ctx.get_help())
        fail("Missing required arguments")
    address = canonical_address(args[0])
    if not quiet:
        _confirm(REMOVE_PROMPT, "Remove raft node operation aborted")
    c = client()
    try:
        c.get("/1.0")   # LXD's ConnectLXDUnix fetches the server first
    except (rest.ClientError, OSError) as e:
        fail(f"Failed to connect to LXD daemon: {e}")
    try:
        c.delete("/internal/cluster/raft-node/" + quote(address, safe=":[]"))
    except (rest.ClientError, OSError) as e:
        fail(str(e))


for _cmd in (edit, list_database, recover_from_quorum_loss, remove_raft_node, show):
    cluster.add_command(_cmd)
# cobra's alias of list-database
cluster.add_command(click.Command("ls", context_settings=CONTEXT, hidden=True, callback=list_database.callback,
                                  params=list_database.params, help=list_database.help), "ls")
