"""Where corrald keeps its state. Everything derives from $CORRAL_DIR."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Paths:
    root: str

    @classmethod
    def from_env(cls, root: str | None = None) -> "Paths":
        # LXD_DIR too, for scripts written for `lxd` (CORRAL_DIR wins when both are set).
        return cls(os.path.abspath(root or os.environ.get("CORRAL_DIR") or os.environ.get("LXD_DIR")
                                   or "/var/lib/corral"))

    def join(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def socket(self) -> str:
        return os.environ.get("CORRAL_SOCKET") or self.join("unix.socket")

    @property
    def database(self) -> str:
        return self.join("database")

    @property
    def global_db(self) -> str:
        return self.join("database", "global")

    @property
    def local_db(self) -> str:
        return self.join("database", "local.db")

    @property
    def logs(self) -> str:
        return self.join("logs")

    @property
    def pidfile(self) -> str:
        return self.join("corrald.pid")

    # Modes of the top of the state tree, set (also on existing directories) at every start.
    # Unprivileged container roots must traverse $CORRAL_DIR (devlxd, host-path disks): 0711.
    # Everything that holds container data is root-only (see storage/perms.py).
    # LXD's layout: containers/<name> and snapshots/<name> are links into storage-pools/<pool>/
    # (corral/instance/layout.py), images/<fingerprint>[.rootfs], logs/<name>/ (lxc.conf, lxc.log),
    # networks/<name>/dnsmasq.*, devlxd/sock; devices/ is LXD's per-instance device directory.
    MODES = (("database", 0o700), ("logs", 0o700), ("images", 0o700), ("backups", 0o700),
             ("storage-pools", 0o711), ("markers", 0o700), ("containers", 0o711), ("snapshots", 0o700),
             ("devices", 0o711))

    def ensure(self) -> None:
        """Create the state tree with the modes above (tightening directories an older release made)."""
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o711)
        for sub, mode in self.MODES:
            os.makedirs(self.join(sub), mode=mode, exist_ok=True)
            os.chmod(self.join(sub), mode)


def socket_alive(path: str) -> bool:
    """Whether a daemon answers on the unix socket at `path`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()
