"""Instance keys applied to a running container (beyond cgroup limits and devices).

- security.devlxd: /dev/lxd (the guest API socket's directory) is bind-mounted into the running
  container when the key turns on, and unmounted when it turns off (LXD does the same live).
- security.nesting: the one mount nesting adds (/sys/kernel/security) is attached or detached live
  (AppArmor stays "unconfined" for Corral's containers, so there is no profile to reload).
- linux.kernel_modules: the modules are loaded on the host when the container starts and when the
  key changes on a running one (LXD: modprobe before start; "live update: yes").
"""
from __future__ import annotations

import asyncio
import os
import subprocess

from corral import config
from corral.errors import BadRequest
from corral.storage import nsmount

DEVLXD_TARGET = "/dev/lxd"
SECURITYFS = "/sys/kernel/security"


def _load_module(name: str) -> None:
    if os.path.isdir(f"/sys/module/{name.replace('-', '_')}"):
        return
    try:
        res = subprocess.run(["modprobe", "-b", name], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise BadRequest(f"Failed to load kernel module '{name}': the kernel has no such module and this host "
                         "has no module loader (modprobe)") from None
    if res.returncode != 0:
        detail = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit status {res.returncode}"
        raise BadRequest(f"Failed to load kernel module '{name}': {detail}")


async def load_kernel_modules(cfg: dict) -> None:
    for name in config.value(config.INSTANCE, cfg, "linux.kernel_modules") or []:
        await asyncio.to_thread(_load_module, name)


def _devlxd(cfg: dict) -> bool:
    return bool(config.value(config.INSTANCE, cfg, "security.devlxd"))


async def _set_devlxd(daemon, pid: int, on: bool) -> None:
    try:
        if on:
            await asyncio.to_thread(nsmount.run, "add", str(pid), daemon.devlxd.dir, DEVLXD_TARGET, "ro")
        else:
            await asyncio.to_thread(nsmount.run, "remove", str(pid), DEVLXD_TARGET)
    except OSError as e:
        if on or ("Invalid argument" not in str(e) and "No such file" not in str(e)):
            raise BadRequest(f"Failed to {'add' if on else 'remove'} /dev/lxd in the instance: {e}") from None


def _nesting(cfg: dict) -> bool:
    return bool(config.value(config.INSTANCE, cfg, "security.nesting"))


async def _set_nesting(pid: int, on: bool) -> None:
    if not os.path.isdir(SECURITYFS):
        return   # the mount is "optional" at start too
    try:
        if on:
            await asyncio.to_thread(nsmount.run, "add", str(pid), SECURITYFS, SECURITYFS)
        else:
            await asyncio.to_thread(nsmount.run, "remove", str(pid), SECURITYFS)
    except OSError as e:
        if on or ("Invalid argument" not in str(e) and "No such file" not in str(e)):
            raise BadRequest(f"Failed to apply security.nesting to the running instance: {e}") from None


async def apply(daemon, old, new, pid: int) -> None:
    """Make the running instance's live keys those of `new` (`old`: what runs now). On failure what
    this call changed is put back and the error raised."""
    if pid <= 0:
        return   # no process behind the instance (the fake driver of mock mode): nothing runs to change
    undo = []
    try:
        if _devlxd(old.config) != _devlxd(new.config):
            await _set_devlxd(daemon, pid, _devlxd(new.config))
            undo.append(lambda: _set_devlxd(daemon, pid, _devlxd(old.config)))
        if _nesting(old.config) != _nesting(new.config):
            await _set_nesting(pid, _nesting(new.config))
            undo.append(lambda: _set_nesting(pid, _nesting(old.config)))
        if old.config.get("linux.kernel_modules") != new.config.get("linux.kernel_modules"):
            await load_kernel_modules(new.config)
    except BaseException:
        for step in reversed(undo):
            await step()
        raise
