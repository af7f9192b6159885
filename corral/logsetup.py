"""Logging as LXD's daemon and its subcommands set it up: --debug, --verbose, --logfile, --syslog,
--trace <subsystem>. Shared by corrald and its lxd-style subcommands (corral/lxdcmd/)."""
from __future__ import annotations

import logging
import logging.handlers
import os
import sys

# --trace targets: LXD's subsystem names mapped to the loggers that carry them (others: corral.<target>).
TRACE_LOGGERS = {"dqlite": ("dqliteclient", "dqlitewire", "corral.db"), "database": ("corral.db",),
                 "raft": ("corral.db.node",), "http": ("aiohttp.access", "corral.api"),
                 "events": ("corral.events",)}
SYSLOG_SOCKET = "/dev/log"


def setup_logging(debug: bool, logfile: str | None, *, verbose: bool = False, syslog: bool = False,
                  trace: list[str] | tuple = (), default_level: str = "WARNING") -> None:
    """LXD's levels: --debug everything, --verbose information messages, else warnings and errors."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if debug else logging.INFO if verbose else getattr(logging, default_level))
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        handlers.append(logging.FileHandler(logfile))
    if syslog:
        if os.path.exists(SYSLOG_SOCKET):
            handlers.append(logging.handlers.SysLogHandler(address=SYSLOG_SOCKET))
        else:
            print(f"Warning: --syslog: no syslog socket at {SYSLOG_SOCKET}, not logging to syslog",
                  file=sys.stderr)
    from corral import logthrottle
    for h in handlers:
        h.setFormatter(logging.Formatter("corrald: %(levelname)s %(name)s: %(message)s")
                       if isinstance(h, logging.handlers.SysLogHandler) else fmt)
        root.addHandler(logthrottle.install(h))
    for noisy in ("aiohttp.access", "dqliteclient", "dqlitewire", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for target in trace:
        for name in TRACE_LOGGERS.get(target, (target if target.startswith("corral") else f"corral.{target}",)):
            logging.getLogger(name).setLevel(logging.DEBUG)
