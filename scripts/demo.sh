#!/usr/bin/env bash
# The main job: start corrald in the background on its embedded one-member dqlite database,
# initialise it (dir pool `default`), build a busybox image, launch a container and list it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CORRAL_DIR="${CORRAL_DIR:-/var/lib/corral}"
B=.venv/bin
if ! $B/corrald waitready --timeout 1 2>/dev/null; then
  mkdir -p "$CORRAL_DIR" && chmod 0711 "$CORRAL_DIR"
  (setsid $B/corrald --logfile "$CORRAL_DIR/logs/corrald.log" >/dev/null 2>&1 < /dev/null &)
  $B/corrald waitready --timeout 30
fi
$B/corrald init --auto
$B/corral info | sed -n '/^environment:/,/^  server_version/p' | grep -E 'server_|driver|kernel_version' || true
$B/corral image show busybox >/dev/null 2>&1 || $B/corral image build busybox --alias busybox
$B/corral list --format csv -c n | grep -qx demo || $B/corral launch busybox demo
$B/corral exec demo -- sh -c 'echo "hello from $(hostname)"'
$B/corral list
echo "corrald is running (socket $CORRAL_DIR/unix.socket). Also try: LXD_SOCKET=$CORRAL_DIR/unix.socket lxc list"
echo "Stop it with: $B/corrald shutdown   (containers keep running; 'corral delete -f demo' removes the demo)"
