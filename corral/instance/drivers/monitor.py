"""liblxc's `[lxc monitor]` processes, as the process table shows them.

`lxc-start -d` double-forks the monitor and the monitor calls setsid(): it is orphaned to us (the
daemon is a child subreaper), keeps the comm `lxc-start`, leads its own session, and renames its
command line to `[lxc monitor] LXCPATH NAME`. A running container's monitor is the parent of its
init; the monitor of a start that failed is found among our children and reaped here, so that a
failed start leaves no process (not even a zombie) behind.
"""
from __future__ import annotations

import os
import time

from corral.reaper import children

COMM = "lxc-start"
WALL = 0x40000000   # __WALL


def _stat(pid: int) -> tuple[str, str, int, int] | None:
    """(comm, state, ppid, session) of `pid`, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, fields[0], int(fields[1]), int(fields[3])


def parent(pid: int) -> int:
    """The parent pid of `pid` (0 when unknown)."""
    st = _stat(pid) if pid > 0 else None
    return st[2] if st else 0


def monitors(lxcpath: str) -> dict[str, int]:
    """name -> pid of every `[lxc monitor] LXCPATH NAME` process of containers under `lxcpath`, in
    one pass over /proc (a container's monitor is the parent of its init: what a liblxc container
    object per container would tell, at a command-socket round trip each)."""
    prefix = f"[lxc monitor] {lxcpath} "
    out: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (cmd := _cmdline(int(entry))).startswith(prefix):
            name = cmd[len(prefix):]
            if name and " " not in name:
                out[name] = int(entry)
    return out



def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def reap_failed(lxcpath: str, name: str, watched: set[int], timeout: float = 5.0) -> list[int]:
    """After a failed start of `name`: wait (up to `timeout`) for its monitor, if one is still
    running, to exit, and reap every monitor zombie among our children that no watcher waits for
    (an exited monitor's command line is gone, so a zombie cannot be told apart by name; none but
    failed starts leave unwatched ones). Returns the pids reaped."""
    title = f"[lxc monitor] {lxcpath} {name}"
    own_args = f" -n {name} -P {lxcpath} "   # lxc-start's command line, as the driver runs it
    reaped: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        running = False
        for pid in children() - watched:
            st = _stat(pid)
            if st is None or st[0] != COMM:
                continue
            if st[1] == "Z" and st[3] == pid:
                try:
                    if os.waitpid(pid, os.WNOHANG | WALL)[0] == pid:
                        reaped.append(pid)
                except ChildProcessError:
                    pass
            elif st[1] != "Z" and ((cmd := _cmdline(pid)) == title or own_args in f" {cmd} " or not cmd):
                # its monitor (or the monitor to be, before it renames itself), or one exiting
                # (its command line is gone before it turns into a zombie): wait for the zombie
                running = True
        if not running or time.monotonic() >= deadline:
            return reaped
        time.sleep(0.02)
