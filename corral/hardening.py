"""Host hardening checks, reported as /1.0/warnings entries (see docs/production.md).

- Container names can leak to unprivileged users of the host (and to other containers' root, which is
  an unprivileged host user) through a world-readable /proc/sched_debug and /sys/kernel/slab.
- Privileged containers (security.privileged=true) are root on the host when they escape: each one
  that starts raises a warning naming it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import stat

from corral import config

log = logging.getLogger(__name__)

LEAK_TYPE = "Container names may leak to unprivileged users"
PRIVILEGED_TYPE = "Privileged container"

# (path, what an unprivileged reader must not be able to do, the fix)
LEAK_PATHS = [
    ("/proc/sched_debug", stat.S_IROTH, "chmod 400 /proc/sched_debug"),
    ("/sys/kernel/slab", stat.S_IROTH | stat.S_IXOTH, "chmod 700 /sys/kernel/slab/"),
]


def leaking_paths(paths=LEAK_PATHS) -> list[tuple[str, str]]:
    out = []
    for path, bits, fix in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # not exposed by this kernel
        if mode & bits:
            out.append((path, fix))
    return out


async def check(daemon) -> asyncio.Task:
    """Run at start-up: the host checks, then watch instance starts for privileged containers (the
    task returned; `daemon`: the daemon's State)."""
    for path, fix in leaking_paths():
        msg = (f"{path} is readable by unprivileged users, so container names can leak; fix: `{fix}` "
               f"(at every boot, e.g. from a systemd unit or tmpfiles.d)")
        log.warning(msg)
        await daemon.warnings.raise_(LEAK_TYPE, msg, severity="moderate", entity_url=path)
    listener = daemon.events.listen(["lifecycle"], project=None)
    return asyncio.get_running_loop().create_task(_watch(daemon, listener))


async def _watch(daemon, listener) -> None:
    try:
        while True:
            event = await listener.queue.get()
            meta = event.get("metadata") or {}
            if meta.get("action") != "instance-started":
                continue
            project = event.get("project") or "default"
            name = meta.get("source", "").rsplit("/", 1)[-1].split("?", 1)[0]
            try:
                inst = await daemon.instances.load(project, name)
            except Exception:
                continue
            if config.value(config.INSTANCE, inst.config, "security.privileged"):
                msg = (f'Instance "{name}" runs privileged (security.privileged=true): root in it is root '
                       f"on the host if it escapes; prefer unprivileged containers (with "
                       f"security.idmap.isolated=true for a distinct uid range)")
                await daemon.warnings.raise_(PRIVILEGED_TYPE, msg, severity="moderate", project=project,
                                             entity_url=meta.get("source", ""))
    except asyncio.CancelledError:
        pass
    finally:
        daemon.events.unlisten(listener)
