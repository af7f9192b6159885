"""Who may reach a volume on the host: root only.

Instance root filesystems are mounted idmapped, so their files are stored as host uid 0: a setuid
binary made inside a container (or shipped in an image, or kept in a snapshot) is setuid root on
the host. No host user but root may therefore reach any volume. The barrier is each pool's
volume-kind directory (`images`, `containers`, `containers-snapshots`, `custom`,
`custom-snapshots`, `virtual-machines`, `virtual-machines-snapshots`: 0700 root); instance and
snapshot volume directories (containers' and VMs') are also 0100 root (LXD's mode for instance
volumes) and unpacked images 0700. Custom volume roots keep their mode: they are
the root directory of the mount inside the container.

Nothing but root needs to traverse these: liblxc opens the root filesystem in its (root) parent and
idmaps it from there, and custom volumes are attached from a root helper (storage/nsmount.py), never
through a mount entry the container's root would have to resolve. The pool directory itself stays
0711 and $CORRAL_DIR 0711 (devlxd and host-path disks are resolved by the container's root).

`tighten_pool()` is also run at every daemon start, so directories made by an older release with
looser modes are fixed on upgrade.
"""
from __future__ import annotations

import os
import stat

KIND_MODE = 0o700       # <pool>/<kind>/
# <pool>/containers/<vol>/, <pool>/containers-snapshots/<vol>/<snap>/: only root reads through 0100;
# a daemon run as an ordinary user (mock mode, corral/mock.py) owns its volumes and needs 0700.
VOLUME_MODE = 0o100 if os.geteuid() == 0 else 0o700
IMAGE_MODE = 0o700      # <pool>/images/<fingerprint>/
KINDS = ("images", "containers", "containers-snapshots", "custom", "custom-snapshots", "virtual-machines",
         "virtual-machines-snapshots")


def _ls(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def set_mode(path: str, mode: int, changed: list[str] | None = None) -> None:
    """chmod a directory owned by root to `mode` (and chown it to root) unless it already is."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    owner = (0, 0) if os.geteuid() == 0 else (os.geteuid(), os.getegid())   # (mock mode: ourselves)
    if (st.st_uid, st.st_gid) != owner:
        os.chown(path, *owner, follow_symlinks=False)
    if stat.S_IMODE(st.st_mode) != mode or (st.st_uid, st.st_gid) != owner:
        os.chmod(path, mode)
        if changed is not None:
            changed.append(path)


def tighten_pool(pool_path: str) -> list[str]:
    """Make every volume of the pool at `pool_path` reachable by root only; returns what changed."""
    changed: list[str] = []
    for kind in KINDS:
        set_mode(os.path.join(pool_path, kind), KIND_MODE, changed)
    for kind in ("containers", "virtual-machines"):
        base = os.path.join(pool_path, kind)
        for e in _ls(base):
            set_mode(os.path.join(base, e), VOLUME_MODE, changed)
        base = os.path.join(pool_path, f"{kind}-snapshots")
        for vol in _ls(base):
            set_mode(os.path.join(base, vol), KIND_MODE, changed)
            for snap in _ls(os.path.join(base, vol)):
                set_mode(os.path.join(base, vol, snap), VOLUME_MODE, changed)
    base = os.path.join(pool_path, "custom-snapshots")
    for vol in _ls(base):
        set_mode(os.path.join(base, vol), KIND_MODE, changed)
    base = os.path.join(pool_path, "images")
    for e in _ls(base):
        set_mode(os.path.join(base, e), IMAGE_MODE, changed)
    return changed
