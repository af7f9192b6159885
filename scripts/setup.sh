#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 host (as root): Debian packages, subordinate ids,
# LXCFS, and the project's Python 3.13 virtualenv. Safe to run again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(libdqlite0 lxc lxc-dev lxcfs busybox-static dnsmasq-base nftables btrfs-progs xfsprogs
              pkg-config uidmap iproute2 gcc python3-dev zstd squashfs-tools xz-utils curl)
# Virtual machines (issue 14): QEMU and OVMF, and what the VM test image is built with (corral/image/vmbuild.py)
DEB_PACKAGES+=(qemu-system-x86 qemu-utils ovmf e2fsprogs dosfstools mtools systemd-boot-efi binutils)
# Image builder sources (issue 15, corral/builder/sources/): OpenPGP checks of downloads, ISO reading
DEB_PACKAGES+=(gnupg gpgv xorriso)
# Image builder (issue 15): corral-builder's debootstrap source, its chroots (util-linux unshare) and squashfs
DEB_PACKAGES+=(debootstrap debian-archive-keyring)
TEST_PACKAGES=(lxd-client gdisk curl)
# The web UI tests (issue 16): headless Chromium driven by Selenium, client certificates in an NSS db
TEST_PACKAGES+=(chromium chromium-driver libnss3-tools)
BENCH_PACKAGES=(lxd-client lxd debootstrap)

want=("${DEB_PACKAGES[@]}")
[ "${1:-}" = "--test" ] && want+=("${TEST_PACKAGES[@]}")
[ "${1:-}" = "--bench" ] && want+=("${BENCH_PACKAGES[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Unprivileged containers need a subordinate id range for root.
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  grep -q '^root:' "$f" || echo "root:1000000:1000000000" >> "$f"
done

# LXCFS gives containers their own /proc/meminfo etc. Start it if it is not running.
if ! grep -qs ' /var/lib/lxcfs fuse.lxcfs ' /proc/mounts; then
  mkdir -p /var/lib/lxcfs
  (setsid lxcfs /var/lib/lxcfs >/var/log/lxcfs.log 2>&1 < /dev/null &)
  for _ in $(seq 50); do grep -qs ' /var/lib/lxcfs fuse.lxcfs ' /proc/mounts && break; sleep 0.1; done
fi

# Python 3.13 from pyenv (the dqlite client packages need >= 3.13).
if [ ! -x .venv/bin/python ]; then
  PY=""
  for cand in "$(pyenv root 2>/dev/null)"/versions/3.13.*/bin/python3.13 /root/.pyenv/versions/3.13.*/bin/python3.13 \
              "$(command -v python3.13 || true)"; do
    [ -x "$cand" ] && PY="$cand" && break
  done
  if [ -z "$PY" ]; then
    echo "setup: Python 3.13 not found (looked in \$(pyenv root)/versions/3.13.* and PATH)." >&2
    echo "setup: install it (e.g. 'pyenv install 3.13') and run this again." >&2
    exit 1
  fi
  "$PY" -m venv .venv
fi
extras=""
case "${1:-}" in --test|--bench) extras="[test]" ;; esac
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".${extras}"
  touch "$stamp"
fi
# corral-attach, the exec helper (a small C program on liblxc's attach, so that exec does not clone
# the daemon): built into the venv from corral/instance/drivers/corral-attach.c, again when it changes.
attach_src=corral/instance/drivers/corral-attach.c
attach_bin=.venv/libexec/corral-attach
if [ ! -x "$attach_bin" ] || [ "$attach_src" -nt "$attach_bin" ]; then
  mkdir -p .venv/libexec
  # shellcheck disable=SC2046
  gcc -O2 -Wall -Wextra -o "$attach_bin.tmp" "$attach_src" $(pkg-config --cflags --libs lxc)
  mv "$attach_bin.tmp" "$attach_bin"
fi
# corral-agent, the agent inside VMs (corral/vmagent/*.c): one static binary (the guest has nothing
# but busybox), built again when any of its sources is newer.
agent_bin=.venv/libexec/corral-agent
agent_srcs=(corral/vmagent/*.c corral/vmagent/*.h)
agent_stale=0
[ -x "$agent_bin" ] || agent_stale=1
for f in "${agent_srcs[@]}"; do [ "$f" -nt "$agent_bin" ] && agent_stale=1; done
if [ "$agent_stale" = 1 ]; then
  mkdir -p .venv/libexec
  gcc -static -O2 -Wall -Wextra -o "$agent_bin.tmp" corral/vmagent/*.c
  mv "$agent_bin.tmp" "$agent_bin"
fi
# pylxd's own live-daemon suite (`integration/` of its source distribution on PyPI), run unchanged by
# tests/integration/test_pylxd_suite.py. Downloaded once, checked against the pinned sha256, unpacked.
PYLXD_SDIST_VERSION=2.4.2
PYLXD_SDIST_SHA256=759881fd94b6dda56ecde44ca1b7c0a7b478b4282ed950cff4f99e28cb207e3a
if [ "${1:-}" = "--test" ] && [ ! -f "build/pylxd-sdist/pylxd-${PYLXD_SDIST_VERSION}/integration/testing.py" ]; then
  mkdir -p build/pylxd-sdist
  tarball="build/pylxd-sdist/pylxd-${PYLXD_SDIST_VERSION}.tar.gz"
  if [ ! -f "$tarball" ]; then
    .venv/bin/pip download -q --no-deps --no-binary :all: "pylxd==${PYLXD_SDIST_VERSION}" -d build/pylxd-sdist
  fi
  if ! echo "${PYLXD_SDIST_SHA256}  ${tarball}" | sha256sum -c --quiet -; then
    echo "setup: ${tarball} does not match its pinned sha256; removed" >&2
    rm -f "$tarball"
    exit 1
  fi
  tar -xzf "$tarball" -C build/pylxd-sdist
fi
echo "setup: ok"
