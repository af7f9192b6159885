"""Running a command in an instance (POST /1.0/instances/NAME/exec), the instance side: the
command's environment and identity, starting it through the instance driver, and the run without
websockets (output to exec_<op>.stdout/.stderr log files with record-output, or nowhere).

The websocket transport (streams, control messages, mirroring the process's fds) is the API's:
corral/api/exec_ws.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os

from corral.apitypes import InstanceExecPost
from corral.errors import BadRequest

DEFAULT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": "/root", "USER": "root", "LANG": "C.UTF-8"}


@dataclasses.dataclass
class Command:
    """A command to run in an instance, as the exec request and the instance's config make it."""
    command: list[str]
    env: dict[str, str]
    cwd: str
    uid: int
    gid: int
    interactive: bool
    width: int
    height: int


def command_of(inst, req: InstanceExecPost) -> Command:
    if not req.command:
        raise BadRequest("Command must be a non-empty array of strings")
    env = dict(DEFAULT_ENV)
    env.update({k[len("environment."):]: v for k, v in inst.config.items() if k.startswith("environment.")})
    env.update(req.environment)
    return Command(command=req.command, env=env, cwd=req.cwd or env.get("HOME") or "/", uid=req.user,
                   gid=req.group, interactive=req.interactive, width=req.width or 80, height=req.height or 24)


def check_running(instances, inst) -> None:
    if instances.status(inst) != "Running":
        raise BadRequest("Instance is not running")


def announce(instances, inst, cmd: Command, requestor: dict | None) -> None:
    """The instance-exec lifecycle event."""
    instances.events.lifecycle("instance-exec", f"/1.0/instances/{inst.name}", project=inst.project,
                               context={"command": cmd.command}, requestor=requestor)


async def spawn(instances, inst, cmd: Command):
    """Start the command through the instance driver: its process (fds pty or stdin/stdout/stderr,
    wait(), resize(), kill())."""
    return await asyncio.to_thread(
        instances.instance(inst).exec, cmd.command, cmd.env,
        cmd.cwd, cmd.uid, cmd.gid, cmd.interactive, cmd.width, cmd.height)


async def run_detached(instances, inst, cmd: Command, op_id: str, record: bool) -> dict:
    """Run without websockets: stdin closed, the output recorded or dropped; LXD's operation metadata."""
    proc = await spawn(instances, inst, cmd)
    logs = instances.log_dir(inst.project, inst.name)
    targets = {}
    if record:
        os.makedirs(logs, mode=0o700, exist_ok=True)
        targets = {fd: os.path.join(logs, f"exec_{op_id}.{kind}") for fd, kind in (("1", "stdout"), ("2", "stderr"))}
    os.close(proc.stdin)

    def drain(src: int, dst: str | None) -> None:
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(open(dst, "wb")) if dst else None
            while chunk := os.read(src, 65536):
                if out:
                    out.write(chunk)
            os.close(src)

    # Reap the command as soon as it ends, even if a background child keeps the pipes open.
    code, _, _ = await asyncio.gather(asyncio.to_thread(proc.wait),
                                      asyncio.to_thread(drain, proc.stdout, targets.get("1")),
                                      asyncio.to_thread(drain, proc.stderr, targets.get("2")))
    meta: dict = {"return": code}
    if record:
        base = f"/1.0/instances/{inst.name}/logs"
        suffix = "" if inst.project == "default" else f"?project={inst.project}"
        meta["output"] = {fd: f"{base}/{os.path.basename(p)}{suffix}" for fd, p in targets.items()}
    return meta
