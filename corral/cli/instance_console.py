"""`corral console`: attach to an instance's console over LXD's console websockets, or show its
log (lxc's console.go). The terminal handling is exec's (instance_exec.py)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from corral.cli import instance_exec as term
from corral.cli.client import Client, ClientError
from corral.cli.config import q
from corral.cli.main import CONTEXT_SETTINGS, Ctx, fail, pass_ctx, strip_remote

DETACH_KEY = b"\x01"  # ctrl+a, then q


async def run_console_session(client: Client, op: dict, stdin: Any, stdout: Any) -> None:
    loop = asyncio.get_running_loop()
    op_id = op["id"]
    fds = (op.get("metadata") or {}).get("fds") or {}
    queue: asyncio.Queue = asyncio.Queue()
    state = {"escape": False}

    def watch(data: bytes) -> bool:
        # <ctrl>+a q detaches.
        if state["escape"] and data[:1] in (b"q", b"Q"):
            return False
        state["escape"] = data.endswith(DETACH_KEY)
        return True

    async with client.ws_session() as session:
        control = await client.ws_connect(session, client.operation_websocket(op_id, fds["control"])) \
            if fds.get("control") else None
        ws0 = await client.ws_connect(session, client.operation_websocket(op_id, fds["0"]))
        installed = term.install_signal_handlers(loop, control, forward=False, resize=True) if control else []
        try:
            if stdin is not None:
                term.start_reader(stdin, loop, queue)
            sender = loop.create_task(term.send_stdin(ws0, queue, eof_marker=False, watch=watch))
            receiver = loop.create_task(term.receive_output(ws0, stdout))
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            for task in (sender, receiver):
                task.cancel()
        finally:
            term.remove_signal_handlers(loop, installed)
            await term.close_quietly(control, ws0)


def show_console_log(ctx: Ctx, name: str) -> None:
    client = ctx.client
    with client.raw("GET", f"/1.0/instances/{q(name)}/console") as resp:
        body = resp.read()
        if resp.status != 200:
            client.parse_envelope(resp.status, body)
    click.echo(f"\nConsole log:\n\n{body.decode('utf-8', 'replace')}")


def attach_console(ctx: Ctx, name: str, console_type: str = "console") -> None:
    width, height = term.terminal_size(sys.stdout)
    env = ctx.client.post(f"/1.0/instances/{q(name)}/console",
                          {"width": width, "height": height, "type": console_type})
    op = env.get("metadata") or {}
    sys.stdout.write("To detach from the console, press: <ctrl>+a q\n\r")
    sys.stdout.flush()
    with term.RawTerminal(sys.stdin, enabled=term.is_tty(sys.stdin)):
        asyncio.run(run_console_session(ctx.client, op, sys.stdin, sys.stdout))


@click.command("console", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--show-log", is_flag=True, help="Retrieve the instance's console log")
@click.option("-t", "--type", "console_type", default="console", show_default=True,
              help="Type of connection to establish: 'console' for serial console")
@pass_ctx
def console(ctx: Ctx, name: str, show_log: bool, console_type: str) -> None:
    """Attach to instance consoles (detach with <ctrl>+a q)."""
    name = strip_remote(name)
    if show_log:
        show_console_log(ctx, name)
        return
    if console_type != "console":
        fail(f"Unknown console type {console_type!r}")
    try:
        attach_console(ctx, name, console_type)
    except ClientError:
        raise
