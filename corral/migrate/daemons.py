"""The two daemons, as the migration drives them: LXD (the source) and corrald (the target).

Both are "manual" installs here (lxd-to-incus has a source per packaging: snap, deb, ...): the
daemon is started detached with `--group G --logfile F` and stopped with `<daemon> shutdown`.
LXD_BIN / CORRALD_BIN name other binaries. LXD is reached on $LXD_DIR/unix.socket; corrald on
<corral-dir>/unix.socket.
"""
from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import time

from corral.migrate.api import Api, ApiError


def _env(data_dir: str) -> dict:
    env = dict(os.environ, LXD_DIR=data_dir, CORRAL_DIR=data_dir)
    for k in ("LXD_SOCKET", "CORRAL_SOCKET"):
        env.pop(k, None)
    return env


class Daemon:
    kind = ""

    def __init__(self, data_dir: str, binary: str):
        self.dir = data_dir
        self.binary = binary
        self.api = Api(os.path.join(data_dir, "unix.socket"))

    def run(self, *args: str, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, *args], env=_env(self.dir), capture_output=True, text=True,
                              input=input, timeout=timeout)

    def start(self, group: str, logfile: str, timeout: float = 120) -> None:
        with open(logfile + ".out", "ab") as out:
            subprocess.Popen([self.binary, "--group", group, "--logfile", logfile], env=_env(self.dir),
                             stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        r = self.run("waitready", "--timeout", str(int(timeout)), timeout=timeout + 30)
        if r.returncode != 0:
            tail = []
            for path in (logfile, logfile + ".out"):
                try:
                    with open(path, errors="replace") as f:
                        tail += [f"  {path}: {line.rstrip()}" for line in f.readlines()[-5:]]
                except OSError:
                    pass
            raise RuntimeError(f"{self.kind} did not become ready: {r.stderr.strip() or r.stdout.strip() or '-'}"
                               + "".join("\n" + t for t in tail))

    def shutdown(self, timeout: float = 600) -> None:
        r = self.run("shutdown", "--timeout", str(int(timeout)), timeout=timeout + 30)
        if r.returncode != 0:
            raise RuntimeError(f"{self.kind} shutdown failed: {r.stderr.strip()}")
        deadline = time.monotonic() + 30
        while self.api.alive() and time.monotonic() < deadline:
            time.sleep(0.1)

    def group(self) -> str:
        try:
            return grp.getgrgid(os.stat(self.api.socket).st_gid).gr_name
        except (OSError, KeyError):
            return "root"

    def statuses(self) -> dict[tuple[str, str], str]:
        out = {}
        for inst in self.api.get("/1.0/instances?recursion=1&all-projects=true"):
            out[(inst.get("project") or "default", inst["name"])] = inst["status"]
        return out

    def set_state(self, project: str, name: str, action: str, timeout: int = 60) -> None:
        doc = self.api.request("PUT", f"/1.0/instances/{name}/state?project={project}",
                               {"action": action, "timeout": timeout, "force": action == "stop"})
        self.api.wait(doc, timeout=timeout + 30)


class Lxd(Daemon):
    kind = "LXD"

    def __init__(self, data_dir: str):
        super().__init__(data_dir, os.environ.get("LXD_BIN") or shutil.which("lxd") or "lxd")

    def sql_dump(self, scope: str) -> str:
        r = self.run("sql", scope, ".dump")
        if r.returncode != 0:
            raise RuntimeError(f"lxd sql {scope} .dump failed: {r.stderr.strip()}")
        return r.stdout


class Corrald(Daemon):
    kind = "corrald"

    def __init__(self, data_dir: str):
        binary = os.environ.get("CORRALD_BIN") or os.path.join(os.path.dirname(sys.executable), "corrald")
        if not os.path.exists(binary):
            binary = shutil.which("corrald") or "corrald"
        super().__init__(data_dir, binary)


__all__ = ["Lxd", "Corrald", "ApiError"]
