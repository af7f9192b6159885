"""Removing every network host object a Corral state directory made (its bridges, tunnels,
nftables tables, dnsmasq processes and lease files), without a daemon: for tests and for
wiping a state directory. Host objects are removed only in the network namespace they were
made in (recorded in each network's host.json)."""
from __future__ import annotations

import os
import signal
import time

from corral.network.dnsmasq import find_running
from corral.network.drivers.bridge import remove_host_objects


def remove_networks(state_dir: str) -> list[str]:
    """Take down every network recorded under STATE_DIR/networks; the names handled."""
    root = os.path.join(state_dir, "networks")
    done = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        netdir = os.path.join(root, name)
        pid = find_running(netdir, name)
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while find_running(netdir, name) == pid and time.monotonic() < deadline:
                try:   # our child when this process started it; otherwise someone else reaps
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.02)
        remove_host_objects(netdir, name)
        done.append(name)
    return done
