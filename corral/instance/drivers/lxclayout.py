"""Where liblxc's files live, as in LXD: liblxc runs with lxcpath `$CORRAL_DIR/containers`, and
`containers/<name>` is a symlink to the instance volume (`storage-pools/<pool>/containers/<name>`,
holding rootfs/, metadata.yaml, templates/, backup.yaml). The generated liblxc configuration is
`logs/<name>/lxc.conf` (LXD: `c.LogPath()/lxc.conf`), loaded explicitly into each liblxc handle.

An older Corral kept a real directory `containers/<name>` holding liblxc's `config`: `link()` moves
that over. The lxcpath itself does not change, so liblxc's command socket of a container that is
running through the move (named after lxcpath and name) stays the same and it is still adopted.
"""
from __future__ import annotations

import os
import shutil


def conf_path(logpath: str, name: str) -> str:
    return os.path.join(logpath, name, "lxc.conf")


def migrate_old(lxcpath: str, logpath: str, name: str) -> bool:
    """Move an old-layout `containers/<name>/config` to `logs/<name>/lxc.conf`; True if it did."""
    p = os.path.join(lxcpath, name)
    if os.path.islink(p) or not os.path.isdir(p):
        return False
    old, new = os.path.join(p, "config"), conf_path(logpath, name)
    if os.path.isfile(old) and not os.path.exists(new):
        os.makedirs(os.path.dirname(new), mode=0o700, exist_ok=True)
        shutil.copy2(old, new + ".tmp")
        os.replace(new + ".tmp", new)
    shutil.rmtree(p)
    return True


def link(lxcpath: str, logpath: str, name: str, target: str) -> None:
    """Point `containers/<name>` at the instance volume `target` (replaced atomically)."""
    migrate_old(lxcpath, logpath, name)
    p = os.path.join(lxcpath, name)
    if os.path.islink(p) and os.readlink(p) == target:
        return
    tmp = os.path.join(lxcpath, f".{name}.link")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, p)


def unlink(lxcpath: str, logpath: str, name: str) -> None:
    """Remove the definition: the `containers/<name>` link (or old directory) and lxc.conf."""
    p = os.path.join(lxcpath, name)
    if os.path.islink(p):
        os.unlink(p)
    elif os.path.isdir(p):
        shutil.rmtree(p, ignore_errors=True)
    try:
        os.unlink(conf_path(logpath, name))
    except FileNotFoundError:
        pass


def defined(lxcpath: str, logpath: str) -> list[str]:
    """Names with a definition: a `containers/<name>` entry or a `logs/<name>/lxc.conf`."""
    names = set()
    for base, test in ((lxcpath, lambda e: os.path.islink(os.path.join(lxcpath, e))
                        or os.path.isdir(os.path.join(lxcpath, e))),
                       (logpath, lambda e: os.path.isfile(conf_path(logpath, e)))):
        try:
            entries = os.listdir(base)
        except FileNotFoundError:
            continue
        names.update(e for e in entries if not e.startswith(".") and test(e))
    return sorted(names)
