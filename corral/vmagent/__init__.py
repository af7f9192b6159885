"""corral-agent, the guest agent of Corral's VMs: C sources here, built statically by
scripts/setup.sh into <venv>/libexec/corral-agent. The image builder copies it into VM images."""
from __future__ import annotations

import os
import sys

SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))
BINARY = os.path.join(sys.prefix, "libexec", "corral-agent")


def sources() -> list[str]:
    return sorted(os.path.join(SOURCE_DIR, n) for n in os.listdir(SOURCE_DIR) if n.endswith((".c", ".h")))


def agent_binary() -> str:
    """The path of the built agent (nothing is built here); FileNotFoundError naming the fix when it
    is missing or older than its sources."""
    if not os.access(BINARY, os.X_OK):
        raise FileNotFoundError(f"The VM agent {BINARY} is not built (scripts/setup.sh builds it)")
    built = os.stat(BINARY).st_mtime
    stale = [os.path.basename(s) for s in sources() if os.stat(s).st_mtime > built]
    if stale:
        raise FileNotFoundError(f"The VM agent {BINARY} is older than {', '.join(stale)}: run scripts/setup.sh")
    return BINARY
