#!/usr/bin/env bash
# The whole test suite: installs dependencies (apt-get), configures a Release
# build with tests, builds, and runs every ctest.  Extra arguments go to ctest
# (e.g. -L quick).  BTM_STRESS_SCALE sizes the stress tests (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBTM_BUILD_TESTS=ON
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
ctest -j"$(nproc)" --output-on-failure "$@"
