#!/usr/bin/env bash
# The whole test suite: installs dependencies (apt-get), configures a Release
# build with tests, builds, and runs every ctest.  Extra arguments go to ctest
# (e.g. -L quick).  BTM_STRESS_SCALE sizes the stress tests (default 1).
# Then the AddressSanitizer configuration (BTM_ASAN=ON, in $BUILD-asan):
# the btm_* API tests, so that the option keeps building and its tests keep
# passing; BTM_SKIP_ASAN=1 leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
bash scripts/build.sh -DBTM_BUILD_TESTS=ON
(cd "$BUILD" && ctest -j"$(nproc)" --output-on-failure "$@")
if [ "${BTM_SKIP_ASAN:-0}" != 1 ] && [ $# -eq 0 ]; then
  cmake -S . -B "$BUILD-asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBTM_ASAN=ON -DBTM_BUILD_TESTS=ON \
    -DBTM_BUILD_TOOLS=OFF >/dev/null
  cmake --build "$BUILD-asan" -j"$(nproc)" --target btm_api_test
  (cd "$BUILD-asan" && ctest --output-on-failure -R '^btm_api_test$')
fi
