#!/usr/bin/env bash
# The whole test suite: installs dependencies (apt-get), configures a Release
# build with tests, builds, and runs every ctest.  Extra arguments go to ctest
# (e.g. -L quick).  BTM_STRESS_SCALE sizes the stress tests (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
bash scripts/build.sh -DBTM_BUILD_TESTS=ON
cd "$BUILD"
ctest -j"$(nproc)" --output-on-failure "$@"
