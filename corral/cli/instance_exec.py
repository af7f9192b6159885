"""`corral exec`: LXD's exec websocket protocol (the terminal helpers are shared with
instance_console.py).

exec: POST /1.0/instances/NAME/exec with wait-for-websocket=true, then one
websocket per fd (/1.0/operations/ID/websocket?secret=...): "control" plus
"0", "1", "2" (non-interactive) or only "0" (interactive, a pty both ways).
stdin is sent as binary messages and its end as an empty text message; an
output stream ends with a text message or the close of its websocket.  The
command's exit code is the operation's metadata "return"."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from typing import Any, Callable

import click

from corral.cli.client import Client
from corral.cli.config import q
from corral.cli.main import CONTEXT_SETTINGS, Ctx, fail, pass_ctx, strip_remote

# Signals lxc forwards to the remote command (SIGWINCH becomes a resize).
FORWARDED_SIGNALS = [
    "SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT", "SIGABRT", "SIGTSTP", "SIGTTIN", "SIGTTOU",
    "SIGUSR1", "SIGUSR2", "SIGCONT",
]


# --------------------------------------------------------------------------
# Local terminal helpers
# --------------------------------------------------------------------------


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, ValueError, OSError):
        return None


def is_tty(stream: Any) -> bool:
    fd = _fileno(stream)
    return fd is not None and os.isatty(fd)


def terminal_size(stream: Any = None) -> tuple[int, int]:
    fd = _fileno(stream if stream is not None else sys.stdout)
    if fd is None or not os.isatty(fd):
        return 0, 0
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 0, 0
    return size.columns, size.lines


class RawTerminal:
    """Put a terminal in raw mode for the duration of a with-block."""

    def __init__(self, stream: Any, enabled: bool = True):
        self.fd = _fileno(stream) if enabled else None
        self.saved: Any = None

    def __enter__(self) -> "RawTerminal":
        if self.fd is not None and os.isatty(self.fd):
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            # TCSANOW, not setraw's default TCSAFLUSH: what was typed before the remote side was
            # ready (typeahead) stays queued and reaches the command, as with lxc.
            tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def start_reader(stream: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
    """Read ``stream`` in a daemon thread; chunks go to ``queue``, then None."""
    fd = _fileno(stream)
    binary = getattr(stream, "buffer", stream)

    def read() -> bytes:
        if fd is not None:
            return os.read(fd, 65536)
        reader = getattr(binary, "read1", None) or binary.read
        data = reader(65536)
        return data.encode() if isinstance(data, str) else data

    def run() -> None:
        try:
            while True:
                data = read()
                if not data:
                    break
                loop.call_soon_threadsafe(queue.put_nowait, data)
        except (OSError, ValueError):
            pass
        try:
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:  # loop closed
            pass

    threading.Thread(target=run, daemon=True, name="corral-stdin").start()


def in_daemon_thread(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> asyncio.Future:
    """Run a blocking call in a daemon thread (never joined at exit)."""
    fut: asyncio.Future = loop.create_future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the loop
            err = exc

            def fail_() -> None:
                if not fut.done():
                    fut.set_exception(err)

            try:
                loop.call_soon_threadsafe(fail_)
            except RuntimeError:
                pass
            return

        def ok() -> None:
            if not fut.done():
                fut.set_result(result)

        try:
            loop.call_soon_threadsafe(ok)
        except RuntimeError:
            pass

    threading.Thread(target=run, daemon=True, name="corral-opwait").start()
    return fut


def _write(stream: Any, data: bytes) -> None:
    out = getattr(stream, "buffer", stream)
    try:
        out.write(data)
        out.flush()
    except TypeError:  # a text-only stream
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()


# --------------------------------------------------------------------------
# Websocket plumbing shared by exec and console
# --------------------------------------------------------------------------


async def send_stdin(ws: Any, queue: asyncio.Queue, eof_marker: bool = True,
                     watch: Callable[[bytes], bool] | None = None) -> None:
    """Forward queued stdin chunks as binary messages; then the EOF marker.
    ``watch`` may stop forwarding (console detach) by returning False."""
    try:
        while True:
            data = await queue.get()
            if data is None:
                break
            if watch is not None and not watch(data):
                return
            await ws.send_bytes(data)
        if eof_marker:
            await ws.send_str("")
    except (ConnectionError, RuntimeError):
        pass


class OutputClosed(Exception):
    """The local output stream went away (EPIPE)."""


async def receive_output(ws: Any, stream: Any) -> None:
    """Write binary messages to ``stream`` until a text message or close."""
    import aiohttp

    try:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                _write(stream, msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "":
                    break
                _write(stream, msg.data.encode())
            else:
                break
    except BrokenPipeError:
        raise OutputClosed() from None


async def send_control(control: Any, message: dict) -> None:
    try:
        await control.send_str(json.dumps(message))
    except (ConnectionError, RuntimeError):
        pass


def resize_message(stream: Any = None) -> dict | None:
    width, height = terminal_size(stream)
    if not width:
        return None
    return {"command": "window-resize", "args": {"width": str(width), "height": str(height)}}


def install_signal_handlers(loop: asyncio.AbstractEventLoop, control: Any, forward: bool,
                            resize: bool) -> list[int]:
    """SIGWINCH -> window-resize; other signals -> {"command":"signal"}."""
    installed: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        return installed

    def add(signum: int, handler: Callable[[], None]) -> None:
        try:
            loop.add_signal_handler(signum, handler)
            installed.append(signum)
        except (ValueError, RuntimeError, OSError, NotImplementedError):
            pass

    if resize:
        def on_winch() -> None:
            msg = resize_message()
            if msg:
                loop.create_task(send_control(control, msg))

        add(signal.SIGWINCH, on_winch)
    if forward:
        for name in FORWARDED_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            add(signum, lambda s=signum: loop.create_task(
                send_control(control, {"command": "signal", "signal": int(s)})))
    return installed


def remove_signal_handlers(loop: asyncio.AbstractEventLoop, installed: list[int]) -> None:
    for signum in installed:
        try:
            loop.remove_signal_handler(signum)
        except (ValueError, RuntimeError):
            pass


async def close_quietly(*sockets: Any) -> None:
    for ws in sockets:
        if ws is None:
            continue
        try:
            await asyncio.wait_for(ws.close(), 2)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            pass


# --------------------------------------------------------------------------
# exec
# --------------------------------------------------------------------------


async def run_exec_session(client: Client, op: dict, interactive: bool, stdin: Any, stdout: Any,
                           stderr: Any, forward_signals: bool = True) -> dict:
    """Attach to an exec operation's websockets; return the finished operation."""
    loop = asyncio.get_running_loop()
    op_id = op["id"]
    fds = (op.get("metadata") or {}).get("fds") or {}

    def path(secret: str) -> str:
        return client.operation_websocket(op_id, secret)

    waiter = in_daemon_thread(loop, lambda: client.wait_operation(op_id))
    queue: asyncio.Queue = asyncio.Queue()
    async with client.ws_session() as session:
        control = await client.ws_connect(session, path(fds["control"])) if fds.get("control") else None
        sockets = [control]
        installed: list[int] = []
        try:
            if interactive:
                ws0 = await client.ws_connect(session, path(fds["0"]))
                sockets.append(ws0)
                if stdin is not None:
                    start_reader(stdin, loop, queue)
                sender = loop.create_task(send_stdin(ws0, queue, eof_marker=False))
                outputs = [loop.create_task(receive_output(ws0, stdout))]
            else:
                ws0 = await client.ws_connect(session, path(fds["0"])) if fds.get("0") else None
                ws1 = await client.ws_connect(session, path(fds["1"])) if fds.get("1") else None
                ws2 = await client.ws_connect(session, path(fds["2"])) if fds.get("2") else None
                sockets += [ws0, ws1, ws2]
                if stdin is not None:
                    start_reader(stdin, loop, queue)
                else:
                    queue.put_nowait(None)
                sender = loop.create_task(send_stdin(ws0, queue)) if ws0 is not None else None
                outputs = [loop.create_task(receive_output(ws, stream))
                           for ws, stream in ((ws1, stdout), (ws2, stderr)) if ws is not None]
            if control is not None:
                installed = install_signal_handlers(loop, control, forward_signals, resize=interactive)

            pending = set(outputs)
            while pending:
                done, pending = await asyncio.wait(pending | {waiter}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(waiter)
                for task in done:
                    if task is not waiter and not task.cancelled() and isinstance(task.exception(), OutputClosed):
                        raise OutputClosed()
                if waiter.done():
                    # The command is over: let the output drain briefly.
                    if pending:
                        await asyncio.wait(pending, timeout=2)
                    break
            for task in outputs:
                if not task.done():
                    task.cancel()
            if sender is not None and not sender.done():
                sender.cancel()
        finally:
            remove_signal_handlers(loop, installed)
            await close_quietly(*reversed(sockets))
    return await waiter


@click.command("exec", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-t", "--force-interactive", is_flag=True, help="Force pseudo-terminal allocation")
@click.option("-T", "--force-noninteractive", is_flag=True, help="Disable pseudo-terminal allocation")
@click.option("-n", "--disable-stdin", is_flag=True, help="Disable stdin (reads from /dev/null)")
@click.option("--mode", default="auto", type=click.Choice(["auto", "interactive", "non-interactive"]),
              show_default=True, help="Override the terminal mode")
@click.option("--env", "env", multiple=True, help="Environment variable to set (e.g. HOME=/home/foo)")
@click.option("--cwd", default="", help="Directory to run the command in (default /root)")
@click.option("--user", type=int, default=0, help="User ID to run the command as (default 0)")
@click.option("--group", type=int, default=0, help="Group ID to run the command as (default 0)")
@pass_ctx
def exec_(ctx: Ctx, name: str, command: tuple[str, ...], force_interactive: bool, force_noninteractive: bool,
          disable_stdin: bool, mode: str, env: tuple[str, ...], cwd: str, user: int, group: int) -> None:
    """Execute commands in instances: corral exec INSTANCE [--] COMMAND...

    The command's exit code is returned."""
    name = strip_remote(name)
    cmd_args = list(command)
    if cmd_args and cmd_args[0] == "--":
        cmd_args = cmd_args[1:]
    if not cmd_args:
        fail("Invalid number of arguments")
    if force_interactive and force_noninteractive:
        fail("You can't pass -t and -T at the same time")
    if mode != "auto" and (force_interactive or force_noninteractive):
        fail("You can't pass -t or -T at the same time as --mode")

    environment: dict[str, str] = {}
    if "TERM" in os.environ:
        environment["TERM"] = os.environ["TERM"]
    for item in env:
        if "=" not in item:
            fail(f"Bad key=value pair: {item}")
        k, v = item.split("=", 1)
        environment[k] = v

    stdin_tty, stdout_tty = is_tty(sys.stdin), is_tty(sys.stdout)
    if disable_stdin:
        interactive = False
    elif mode == "interactive" or force_interactive:
        interactive = True
    elif mode == "non-interactive" or force_noninteractive:
        interactive = False
    else:
        interactive = stdin_tty and stdout_tty

    width, height = terminal_size(sys.stdout)
    req = {
        "command": cmd_args,
        "wait-for-websocket": True,
        "interactive": interactive,
        "environment": environment,
        "width": width,
        "height": height,
        "record-output": False,
        "user": user,
        "group": group,
        "cwd": cwd,
    }
    client = ctx.client
    env_resp = client.post(f"/1.0/instances/{q(name)}/exec", req)
    op = env_resp.get("metadata") or {}
    if not op.get("id"):
        fail("Failed to start the command")

    stdin = None if disable_stdin else sys.stdin
    try:
        with RawTerminal(sys.stdin, enabled=interactive and stdin_tty):
            result = asyncio.run(run_exec_session(client, op, interactive, stdin, sys.stdout, sys.stderr))
    except OutputClosed:
        # Like a Go program killed by SIGPIPE writing to a closed pipe.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        os._exit(128 + signal.SIGPIPE)
    code = (result.get("metadata") or {}).get("return", 0)
    try:
        code = int(code)
    except (TypeError, ValueError):
        code = 1
    sys.stdout.flush()
    if code:
        ctx_click = click.get_current_context()
        ctx_click.exit(code)
