"""liblxc's `[lxc monitor]` processes, as the process table shows them.

`lxc-start -d` double-forks the monitor and the monitor calls setsid(): it is orphaned to us (the
daemon is a child subreaper), keeps the comm `lxc-start`, leads its own session, and renames its
command line to `[lxc monitor] LXCPATH NAME`. A running container's monitor is the parent of its
init.
"""
from __future__ import annotations

COMM = "lxc-start"


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
