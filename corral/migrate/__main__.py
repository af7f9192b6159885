"""python -m corral.migrate [--lxd-dir DIR] [--corral-dir DIR] [--dry-run | --back]"""
from __future__ import annotations

import argparse
import os
import sys

from corral.migrate.back import go_back
from corral.migrate.run import Migration


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="corral migrate-from-lxd",
                                description="Convert an LXD 5.0 host to Corral in place (as lxd-to-incus does)")
    p.add_argument("--lxd-dir", default="/var/lib/lxd", help="LXD's data directory (default /var/lib/lxd)")
    p.add_argument("--corral-dir", default=os.environ.get("CORRAL_DIR") or "/var/lib/corral",
                   help="Corral's data directory, created by the migration (default /var/lib/corral)")
    p.add_argument("--dry-run", action="store_true", help="Print the plan and every blocker; change nothing")
    p.add_argument("--back", action="store_true",
                   help="Undo a migration that succeeded: stop corrald, move the data back, start LXD")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        print("Error: migrate-from-lxd must run as root", file=sys.stderr)
        return 1
    out = lambda s: print(s, flush=True)   # noqa: E731
    if a.back:
        return go_back(a.lxd_dir, a.corral_dir, out=out)
    return Migration(a.lxd_dir, a.corral_dir, out=out).run(a.dry_run)


if __name__ == "__main__":
    sys.exit(main())
