#!/usr/bin/env bash
# The whole test suite (what `make test` and CI run), in two pytest processes side by side: the slow
# tiers (clusters of network namespaces, VMs under TCG, image builds, the browser, LXD takeovers), which
# mostly wait, beside everything else. Each process writes its own log; both are printed, the slow
# tiers' after the rest. Exit status: non-zero if either failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SLOW=(tests/cluster tests/integration/test_vm_*.py tests/integration/test_builder_images.py
      tests/integration/test_builder_almalinux_source.py tests/integration/test_migrate_from_lxd.py
      tests/integration/test_web_ui.py)
ignore=()
for p in "${SLOW[@]}"; do ignore+=(--ignore="$p"); done
logs=$(mktemp -d /tmp/corral-tests.XXXXXX)
trap 'rm -rf "$logs"' EXIT
"$PY" -m pytest -q -ra --durations=15 "${SLOW[@]}" > "$logs/slow.log" 2>&1 &
slow=$!
"$PY" -m pytest -q -ra --durations=15 tests "${ignore[@]}" 2>&1 | tee "$logs/rest.log"
rest=${PIPESTATUS[0]}
wait "$slow"
slow_rc=$?
echo
echo "==================== slow tiers (run beside the rest) ===================="
cat "$logs/slow.log"
echo "tests: rest exit $rest, slow tiers exit $slow_rc"
[ "$rest" -eq 0 ] && [ "$slow_rc" -eq 0 ]
