#!/usr/bin/env bash
# The main job: start corrald in the background on its embedded one-member dqlite database,
# initialise it, and show what it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CORRAL_DIR="${CORRAL_DIR:-/var/lib/corral}"
B=.venv/bin
if ! $B/corrald waitready --timeout 1 2>/dev/null; then
  mkdir -p "$CORRAL_DIR" && chmod 0711 "$CORRAL_DIR"
  (setsid $B/corrald --logfile "$CORRAL_DIR/corrald.log" >/dev/null 2>&1 < /dev/null &)
  $B/corrald waitready --timeout 30
fi
$B/corrald init --auto
$B/corral info
echo "corrald is running (socket $CORRAL_DIR/unix.socket); stop it with: $B/corrald shutdown"
