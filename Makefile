# Corral. Every target installs what it needs first (idempotent), as root on Debian 12.
.PHONY: setup setup-test run test unit bench bench-growth bench-density bench-cluster bench-cluster-list bench-vm bench-builder bench-image-copy bench-metrics bench-ui clean

setup:
	./scripts/setup.sh

setup-test:
	./scripts/setup.sh --test

# The main job: start corrald in the background and show it working.
run: setup
	./scripts/demo.sh

# Every test: unit, API and integration (real liblxc, dqlite, lxc client, pylxd).
test: setup-test
	./scripts/run-tests.sh

# Unit and API tests, and the orchestration on mock mode (corrald on fake drivers, no root needed).
unit: setup-test
	.venv/bin/python -m pytest -q tests/unit tests/api tests/mock

# Benchmarks against the real LXD (Debian's lxd, installed here): lifecycle, then pool variants.
bench:
	./scripts/setup.sh --bench
	.venv/bin/python bench/bench.py
	.venv/bin/python bench/pools.py

# Cost as the host fills up (issue 11): launch/listings/exec at 0..200 running; density up to 1000.
bench-growth:
	./scripts/setup.sh --bench
	.venv/bin/python bench/growth.py --sizes $(or $(SIZES),0,50,100,200) --reps $(or $(REPS),5)

bench-density:
	./scripts/setup.sh --bench
	.venv/bin/python bench/density.py --max $(or $(MAX),1000)

# Clusters of network namespaces (issue 12): latency, failover, offline detection on 3 and 5 members, and
# scaling up to MAX members. DAEMON=lxd runs the same on the real LXD 5.0.2.
CLUSTER_SIZES = 3,5
bench-cluster:
	./scripts/setup.sh --bench
	.venv/bin/python bench/cluster.py --sizes $(or $(SIZES),$(CLUSTER_SIZES)) --reps $(or $(REPS),3) \
		--max $(or $(MAX),16) --daemon $(or $(DAEMON),corrald)

# `lxc list` of COUNT (300) busybox containers over 3 members, against a standalone corrald and LXD (issue 13);
# RUNNING=1 starts them (each target set up, measured and removed in turn).
bench-cluster-list:
	./scripts/setup.sh --bench
	.venv/bin/python bench/cluster_list.py --count $(or $(COUNT),300) --reps $(or $(REPS),5) $(if $(RUNNING),--running)

# Virtual machines (issue 14): launch to agent-ready, exec latency, stop times and QEMU's memory of corrald's
# VMs, beside QEMU started by hand on the same image (corrald's OVMF command line, and the direct-boot floor).
# The real LXD is probed for VMs and its answer printed (docs/benchmarks.md). JSON=FILE writes every figure.
bench-vm:
	./scripts/setup.sh --bench
	.venv/bin/python bench/vm.py --runs $(or $(RUNS),5) $(if $(JSON),--json $(JSON))

# Image build time: corral-builder (images/debian-bookworm.yaml) vs debootstrap alone, same mirror and cache.
bench-builder:
	./scripts/setup.sh --bench
	.venv/bin/python bench/builder.py --runs $(or $(RUNS),2)

# Image copy throughput over loopback (issue 15): corrald to corrald (simplestreams and the lxd protocol),
# beside the real LXD pulling the same image from corrald and from itself, as ratios.
bench-image-copy:
	./scripts/setup.sh --bench
	.venv/bin/python bench/image_copy.py --size $(or $(SIZE),100) --runs $(or $(RUNS),3) $(if $(JSON),--json $(JSON))

# GET /1.0/metrics with COUNT (200) running busybox containers, corrald beside the real LXD 5.0.2 (issue 16):
# cold (uncached) and cached scrapes, the daemon's CPU per scrape, as a ratio. JSON=FILE writes every figure.
bench-metrics:
	./scripts/setup.sh --bench
	.venv/bin/python bench/metrics.py --count $(or $(COUNT),200) --reps $(or $(REPS),5) $(if $(JSON),--json $(JSON))

# The web UI (issue 16): the instances page with COUNT (200) containers in headless Chromium, first
# paint and table drawn (corrald only: Debian's LXD 5.0.2 has no UI).
bench-ui: setup-test
	.venv/bin/python bench/ui.py --count $(or $(COUNT),200) --reps $(or $(REPS),5)

clean:
	rm -rf .venv build *.egg-info
