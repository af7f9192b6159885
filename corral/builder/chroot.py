"""Running commands inside the image's root filesystem during a build (distrobuilder's SetupChroot).

Each command runs in its own mount and PID namespace (`unshare --mount --pid --fork`): /proc, /sys,
/dev (recursive bind), a tmpfs /run, the host's resolv.conf and any extra bind mounts are mounted there
only, so they vanish with the command, even when it fails or is killed, and any daemon a package's
postinst starts dies with it. A policy-rc.d keeps services from starting while packages install."""
from __future__ import annotations

import os
import shlex
import subprocess

from corral.builder.schema import DefinitionError

DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SHELL": "/bin/sh",
    "TERM": "xterm",
    "DEBIAN_FRONTEND": "noninteractive",
}
POLICY_RC = "usr/sbin/policy-rc.d"


class ChrootError(RuntimeError):
    """A command in the build chroot failed; the message has its output's tail."""


def environment(definition: dict) -> dict[str, str]:
    """distrobuilder's `environment` section: the defaults (unless clear_defaults) and the variables."""
    section = definition.get("environment") or {}
    env = {} if section.get("clear_defaults") else dict(DEFAULT_ENV)
    for i, var in enumerate(section.get("variables", [])):
        if not var.get("key"):
            raise DefinitionError(f"environment.variables[{i}].key: may not be empty")
        env[var["key"]] = var.get("value", "")
    return env


def _setup_script(rootfs: str, binds: list[tuple[str, str]]) -> str:
    r = shlex.quote(rootfs)
    lines = ["set -e",
             f"mount -t proc proc {r}/proc",
             f"mount --rbind /sys {r}/sys",
             f"mount --rbind /dev {r}/dev",
             f"mount -t tmpfs -o mode=0755 tmpfs {r}/run"]
    resolv = os.path.join(rootfs, "etc/resolv.conf")
    if os.path.isfile("/etc/resolv.conf") and not os.path.islink(resolv) and os.path.isfile(resolv):
        lines.append(f"mount --bind /etc/resolv.conf {r}/etc/resolv.conf")
    for host, inside in binds:
        lines.append(f"mount --bind {shlex.quote(host)} {r}/{shlex.quote(inside.lstrip('/'))}")
    return "\n".join(lines)


def run(rootfs: str, argv: list[str], env: dict[str, str], *, binds: list[tuple[str, str]] = (),
        log=None, what: str = "") -> None:
    """Run argv chrooted in rootfs with exactly env; ChrootError (with the output's tail) on failure."""
    for d in ("proc", "sys", "dev", "run"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    for _, inside in binds:
        os.makedirs(os.path.join(rootfs, inside.lstrip("/")), exist_ok=True)
    script = _setup_script(rootfs, list(binds))
    cmd = " ".join(shlex.quote(a) for a in ["chroot", rootfs, "/usr/bin/env", "-i",
                                             *[f"{k}={v}" for k, v in env.items()], *argv])
    # --kill-child: the command's PID namespace dies with unshare (a killed build leaves no daemon)
    full = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
            "/bin/sh", "-c", f"{script}\nexec {cmd}"]
    if not os.path.exists(os.path.join(rootfs, "usr/bin/env")):
        full[-1] = f"{script}\nexec " + " ".join(shlex.quote(a) for a in ["chroot", rootfs, *argv])
    proc = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    if log is not None and proc.stdout:
        log(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
        raise ChrootError(f"{what or argv[0]} failed (exit status {proc.returncode}):\n{tail}")


def run_script(rootfs: str, script: str, env: dict[str, str], *, what: str, log=None) -> None:
    """An action: the script is written into the rootfs, run (by its #! line, else /bin/sh), removed."""
    name = f"corral-builder-action-{os.getpid()}"
    os.makedirs(os.path.join(rootfs, "root"), exist_ok=True)
    path = os.path.join(rootfs, "root", name)
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o755)
    try:
        argv = [f"/root/{name}"] if script.startswith("#!") else ["/bin/sh", f"/root/{name}"]
        run(rootfs, argv, env, what=what, log=log)
    finally:
        os.unlink(path)


class NoServices:
    """policy-rc.d exit 101 while packages install (services must not start in the build chroot)."""

    def __init__(self, rootfs: str):
        self.path = os.path.join(rootfs, POLICY_RC)
        self.placed = False

    def __enter__(self):
        if os.path.isdir(os.path.dirname(self.path)) and not os.path.lexists(self.path):
            with open(self.path, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(self.path, 0o755)
            self.placed = True
        return self

    def __exit__(self, *exc):
        if self.placed:
            os.unlink(self.path)
        return False
