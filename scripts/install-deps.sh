#!/usr/bin/env bash
# Installs every build, test and benchmark dependency on Debian 12 with apt-get.
# Idempotent: packages already present are skipped quickly by apt.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
PKGS=(
  # build
  cmake g++ make ninja-build pkg-config liburing-dev libsystemd-dev libdw-dev clang mandoc
  # libFuzzer's runtime: only a Recommends of clang on Debian 12, which --no-install-recommends skips
  libclang-rt-14-dev
  # tests
  libgtest-dev python3 perl git bash gcc make file procps util-linux
  # peers and tools for benchmarks
  libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 valgrind hyperfine gnuplot-nox
  # promtool, for the btmctl metrics test
  prometheus
)
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
