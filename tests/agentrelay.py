"""A stand-in for QEMU's virtio-serial chardev, to run corral-agent on the host in tests.

The agent connects to `guest_path` (its --port); AgentClient connects to `host_path`, where QEMU
is the server and serves one client at a time. Bytes are relayed both ways. When the host client
goes away the guest sees a hang-up: its connection is closed (the agent reconnects), as a virtio
port polls POLLHUP; with `hangup=False` the guest side stays open instead, so the agent sees no
hang-up at all and must resynchronise on the next HELLO alone (its parser may be mid-frame)."""
from __future__ import annotations

import os
import select
import shutil
import socket
import signal
import subprocess
import sys
import tempfile
import threading
import time

AGENT = os.path.join(sys.prefix, "libexec", "corral-agent")


class Relay:
    def __init__(self, hangup: bool = True):
        self.dir = tempfile.mkdtemp(prefix="agent-relay-")
        self.guest_path = os.path.join(self.dir, "guest.sock")
        self.host_path = os.path.join(self.dir, "host.sock")
        self.hangup = hangup
        self._stop = False
        self._guest_l = self._listen(self.guest_path)
        self._host_l = self._listen(self.host_path)
        self.guest: socket.socket | None = None
        self.host: socket.socket | None = None
        self.guest_connections = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="agent-relay")
        self._thread.start()

    @staticmethod
    def _listen(path: str) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(4)
        return s

    def drop_host(self) -> None:
        """Cut the host client's connection from the relay's side."""
        h = self.host
        if h is not None:
            try:
                h.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close_host(self) -> None:
        if self.host is not None:
            self.host.close()
            self.host = None
            if self.hangup and self.guest is not None:
                self.guest.close()
                self.guest = None

    def _run(self) -> None:
        while not self._stop:
            rl = [self._guest_l] + ([self._host_l] if self.host is None else [])
            rl += [s for s in (self.guest, self.host) if s is not None]
            try:
                ready, _, _ = select.select(rl, [], [], 0.1)
            except (OSError, ValueError):
                continue
            for s in ready:
                if s is self._guest_l:
                    conn, _ = s.accept()
                    if self.guest is not None:
                        self.guest.close()
                    self.guest = conn
                    self.guest_connections += 1
                elif s is self._host_l:
                    self.host, _ = s.accept()
                elif s is self.guest or s is self.host:
                    try:
                        data = s.recv(1 << 20)
                    except OSError:
                        data = b""
                    if s is self.guest:
                        if not data:
                            self.guest.close()
                            self.guest = None
                            if self.host is not None:
                                self.host.close()
                                self.host = None
                        elif self.host is not None:
                            try:
                                self.host.sendall(data)
                            except OSError:
                                self._close_host()
                        # no host: what the guest writes is lost, as with QEMU
                    else:
                        if not data:
                            self._close_host()
                        elif self.guest is not None:
                            try:
                                self.guest.sendall(data)
                            except OSError:
                                pass

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        for s in (self.guest, self.host, self._guest_l, self._host_l):
            if s is not None:
                s.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Agent:
    """corral-agent in the foreground, in its own UTS namespace (it sets the hostname), against a Relay."""

    def __init__(self, relay: Relay, devlxd: str = "", ignored: tuple[int, ...] = ()):
        """`ignored`: signals the agent is started with ignored (as a background job of a script is)."""
        self.log = tempfile.NamedTemporaryFile(prefix="corral-agent-", suffix=".log", delete=False)
        args = ["unshare", "--uts", AGENT, "--foreground", "--port", relay.guest_path, "--devlxd", devlxd]

        def ignore():
            for sig in ignored:
                signal.signal(sig, signal.SIG_IGN)
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     preexec_fn=ignore if ignored else None)

    def output(self) -> str:
        with open(self.log.name) as f:
            return f.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def wait_for(pred, timeout: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
