"""A corrald in mock mode (`corrald --mock`: fake instance, storage and network drivers) for the
tests in tests/mock/. When the test process is root the daemon still runs as an ordinary user
(nobody, uid 65534) with a CORRAL_DIR it owns, which is what shows mock mode needs no root.

If the Python the venv runs on sits under a directory that user cannot enter (pyenv in /root,
mode 0700), the daemon gets a private mount namespace in which that one directory is seen through a
0755 stand-in holding a bind of the Python tree: nothing changes on the host, and the mounts go
away with the daemon. Only the test harness does this (as root, before dropping to the user).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile

from helpers import VENV_BIN, Corrald, busybox_tarball

MOCK_UID = MOCK_GID = 65534


def _blocked_ancestor(path: str) -> tuple[str, str] | None:
    """(the first directory on `path` that others cannot traverse, its child on the way) or None."""
    path = os.path.realpath(path)
    parts = path.strip("/").split("/")
    cur = "/"
    for i, part in enumerate(parts[:-1]):
        cur = os.path.join(cur, part)
        if not os.stat(cur).st_mode & stat.S_IXOTH:
            return cur, parts[i + 1]
    return None


class MockCorrald(Corrald):
    """corrald --mock, as uid 65534 when we are root. `.lxc()`, `.get()`, `.request()` as for Corrald."""

    def __init__(self, debug: bool = False):
        super().__init__(debug=debug)
        self.env["CORRAL_MOCK"] = "1"   # the environment variable form; the flag is passed too
        self.unprivileged = os.geteuid() == 0
        if self.unprivileged:
            os.chown(self.dir, MOCK_UID, MOCK_GID)
            os.chmod(self.dir, 0o700)
            self.wrapper = self._drop_privileges()

    def _drop_privileges(self) -> list[str]:
        setpriv = ["setpriv", f"--reuid={MOCK_UID}", f"--regid={MOCK_GID}", "--clear-groups", "--"]
        blocked = _blocked_ancestor(sys.base_prefix + "/bin")
        if blocked is None:
            return setpriv
        parent, child = blocked
        self.view = tempfile.mkdtemp(prefix="corral-mock-view-", dir="/var/tmp")
        os.chmod(self.view, 0o755)
        os.mkdir(os.path.join(self.view, child), 0o755)
        script = (f'mount --bind "{os.path.join(parent, child)}" "{os.path.join(self.view, child)}" && '
                  f'mount --rbind "{self.view}" "{parent}" && exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"] + setpriv

    def start(self, timeout: float = 30) -> "MockCorrald":
        args = self.wrapper + [os.path.join(VENV_BIN, "corrald"), "--mock"] + (["--debug"] if self.debug else [])
        self.log = open(os.path.join(self.dir, "test-corrald.log"), "ab")
        self.proc = subprocess.Popen(args, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.run("corrald", "waitready", "--timeout", str(int(timeout)), check=True)
        return self

    def cleanup(self) -> None:
        """Stop the daemon and remove its directory: in mock mode nothing lives outside it."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        if getattr(self, "view", None):
            shutil.rmtree(self.view, ignore_errors=True)


@contextlib.contextmanager
def mock_corrald(image: bool = True):
    """A mock-mode corrald after `init --auto`, with the busybox image as `busybox`."""
    d = MockCorrald()
    try:
        d.start()
        d.run("corrald", "init", "--auto", check=True)
        if image:
            d.lxc("image", "import", busybox_tarball(), "--alias", "busybox")
        yield d
    finally:
        d.cleanup()
