#!/usr/bin/env bash
# The main job: installs dependencies, builds libbtmalloc.so, and runs a real
# program (python3, every object through malloc) on it, printing the
# allocator's own statistics and heap profile to show that it did.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
bash scripts/build.sh -DBTM_BUILD_TESTS=OFF
LIB=$(readlink -f "$BUILD/libbtmalloc.so")
echo "== python3 on $LIB"
PYTHONMALLOC=malloc BTM_STATS_AT_EXIT=1 LD_PRELOAD="$LIB" /usr/bin/python3 - <<'PY'
import ctypes, json, threading
data = {str(i): [i, str(i) * 3, {"k": i}] for i in range(200000)}
text = json.dumps(data)
assert json.loads(text) == data
def work(n):
    return sum(len(json.dumps({"n": i, "s": "x" * (i % 50)})) for i in range(n))
threads = [threading.Thread(target=work, args=(20000,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
print("python3: json round trip of", len(data), "entries and 4 threads done;",
      "malloc is", "btmalloc" if hasattr(libc, "btm_stats") else "NOT btmalloc")
libc.malloc_stats()   # under btmalloc: the per-call-site heap profile
PY
