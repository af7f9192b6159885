"""Interactive `corral exec` keeps typeahead (issue 16): what is typed into the terminal before the remote
shell is ready -- right after the command starts, before its websockets are up -- reaches the shell, as
with lxc. Run in a real pseudo-terminal against a running container."""
import os
import pty
import select
import subprocess
import time

import pytest

from helpers import VENV_BIN, initialised_corrald, unique

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def running():
    with initialised_corrald() as d:
        name = unique("tah")
        d.run("corral", "launch", "busybox", name, check=True)
        try:
            yield d, name
        finally:
            d.run("corral", "delete", "-f", name)


def _exec_in_pty(d, name: str, typed: bytes, timeout: float = 60) -> bytes:
    master, slave = pty.openpty()
    proc = subprocess.Popen([os.path.join(VENV_BIN, "corral"), "exec", name, "--", "sh"], env=d.env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        os.write(master, typed)   # at once: corral is still starting, nothing is connected yet
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:   # EIO: the other side is closed
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=30)
        return out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_typeahead_reaches_the_remote_shell(running):
    d, name = running
    out = _exec_in_pty(d, name, b"echo typed-$((6*7))-ahead\nexit 3\n")
    assert b"typed-42-ahead" in out, out


def test_exit_code_of_the_typed_exit(running):
    """A typed-ahead `exit 7` ends the shell, and corral exits with its status."""
    d, name = running
    master, slave = pty.openpty()
    proc = subprocess.Popen([os.path.join(VENV_BIN, "corral"), "exec", name, "--", "sh"], env=d.env,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        os.write(master, b"exit 7\n")
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    os.read(master, 65536)
                except OSError:
                    pass
        assert proc.wait(timeout=30) == 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
