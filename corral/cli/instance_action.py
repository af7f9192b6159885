"""`start`, `stop`, `restart`, `pause`: instance state changes (lxc's action.go)."""

from __future__ import annotations


import click

from corral.cli.config import q
from corral.cli.main import CONTEXT_SETTINGS, Ctx, fail, strip_remote
from corral.cli.instance import batch, change_state, instance_names



def state_command(cmd_name: str, action: str, verb: str, doc: str, with_stop_flags: bool = False):
    def run(ctx: Ctx, names: tuple[str, ...], all_: bool, force: bool = False, timeout: int = -1,
            stateful: bool = False, stateless: bool = False, console: str | None = None) -> None:
        targets = [strip_remote(n) for n in names]
        if console:
            if all_:
                fail("--console can't be used with --all")
            if len(targets) != 1:
                fail("--console only works with a single instance")
        if all_:
            if targets:
                fail("Both --all and instance name given")
            targets = instance_names(ctx)
            if not targets:
                return
        if not targets:
            fail("Invalid number of arguments")

        def one(name: str) -> None:
            act = action
            if action == "start":
                state = ctx.client.metadata(f"/1.0/instances/{q(name)}/state") or {}
                if state.get("status") == "Frozen" or state.get("status_code") == 110:
                    act = "unfreeze"
            change_state(ctx, name, act, force=force, timeout=timeout, stateful=stateful,
                         hint=action == "start")

        if console:
            with_console(ctx, targets[0], console, lambda: one(targets[0]), before=action == "stop")
            return
        batch(targets, one, verb)

    params = [
        click.Argument(["names"], nargs=-1),
        click.Option(["--all", "all_"], is_flag=True, help="Run against all instances"),
    ]
    if with_stop_flags:
        params += [
            click.Option(["-f", "--force"], is_flag=True, help="Force the instance to stop"),
            click.Option(["--timeout"], type=int, default=-1, show_default=True,
                         help="Time to wait for the instance to shutdown cleanly"),
            click.Option(["--stateful"], is_flag=True, help="Store the instance state"),
        ]
    if action == "start":
        params.append(click.Option(["--stateless"], is_flag=True, help="Ignore the instance state"))
    if action in ("start", "stop", "restart"):
        params.append(click.Option(["--console"], is_flag=False, flag_value="console", default=None,
                                   help='Immediately attach to the console (--console[="console"])'))
    return click.Command(cmd_name, callback=click.pass_obj(run), params=params, help=doc,
                         context_settings=CONTEXT_SETTINGS)


def with_console(ctx: Ctx, name: str, console_type: str, act, before: bool) -> None:
    """lxc's --console: attach after a start; for a stop, attach first and stop while attached (the
    console shows the shutdown and ends with it)."""
    import os
    import sys
    import threading

    from corral.cli.instance_console import attach_console

    if not os.isatty(sys.stdin.fileno()):
        fail("inappropriate ioctl for device")
    if console_type != "console":
        fail(f"Unknown console type {console_type!r}")
    if not before:
        act()
        attach_console(ctx, name, console_type)
        return
    errors: list[BaseException] = []

    def stop_in_background() -> None:
        try:
            act()
        except BaseException as exc:  # reported once the console is closed
            errors.append(exc)

    worker = threading.Thread(target=stop_in_background, daemon=True)
    worker.start()
    attach_console(ctx, name, console_type)
    worker.join()
    if errors:
        raise errors[0]


start = state_command("start", "start", "start", "Start instances.")
stop = state_command("stop", "stop", "stop", "Stop instances.", with_stop_flags=True)
restart = state_command("restart", "restart", "restart", "Restart instances.", with_stop_flags=True)
pause = state_command("pause", "freeze", "pause", "Pause instances.")
