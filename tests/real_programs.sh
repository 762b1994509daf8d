#!/usr/bin/env bash
# Runs real programs with libbtmalloc.so preloaded and checks, for each, that
#   - it exits 0 and prints exactly what the workload must print, and
#   - the program's own process ran on btmalloc: with BTM_STATS_AT_EXIT=1 the
#     library prints at exit "btmalloc[PID]: ... slow_mallocs=N ..." on stderr,
#     and that line must be there for the program's PID with N > 0.
# A program that is not installed is reported as SKIPPED (not a pass).
# Exit status: 1 if any program failed; 77 if every program was skipped.
# Usage: real_programs.sh path/to/libbtmalloc.so
set -u
lib=${1:?usage: real_programs.sh LIBRARY}
lib=$(readlink -f "$lib")
[ -f "$lib" ] || { echo "FAIL: $lib does not exist"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/btm-programs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0
export HOME=$tmp/home LC_ALL=C
mkdir -p "$HOME"
unset BTM_ENABLED BTM_HARDENING BTM_CONF

# run NAME DIR COMMAND...: runs the command in DIR with btmalloc preloaded;
# leaves stdout in $tmp/NAME.out, stderr in $tmp/NAME.err, the program's PID
# in $pid and its exit status in $rc.  The subshell writes its PID and then
# execs, so the PID is the program's own.
run() {
  local name=$1 dir=$2
  shift 2
  (
    cd "$dir" || exit 126
    echo "$BASHPID" >"$tmp/$name.pid"
    exec env LD_PRELOAD="$lib" BTM_STATS_AT_EXIT=1 "$@"
  ) >"$tmp/$name.out" 2>"$tmp/$name.err"
  rc=$?
  pid=$(cat "$tmp/$name.pid")
}

# check NAME EXPECTED_STDOUT: compares output, exit status and the stats line.
check() {
  local name=$1 expected=$2 why=""
  if [ "$rc" != 0 ]; then
    why="exit status $rc"
  elif [ "$(cat "$tmp/$name.out")" != "$expected" ]; then
    why="unexpected output: $(head -c 400 "$tmp/$name.out")"
  elif ! grep -qE "^btmalloc\[$pid\]: .*slow_mallocs=[1-9][0-9]*" "$tmp/$name.err"; then
    why="no 'btmalloc[$pid]: ... slow_mallocs=N>0' line on stderr: the program did not run on btmalloc"
  fi
  if [ -z "$why" ]; then
    echo "PASS: $name ($(grep -E "^btmalloc\[$pid\]: " "$tmp/$name.err" | head -n1))"
    passed=$((passed + 1))
  else
    echo "FAIL: $name: $why"
    echo "  --- stderr (last 20 lines) ---"
    tail -n 20 "$tmp/$name.err" | sed 's/^/  /'
    failed=$((failed + 1))
  fi
}

skip() {
  echo "SKIPPED: $1"
  skipped=$((skipped + 1))
}

have() { command -v "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- python3
python=/usr/bin/python3
if [ -x "$python" ]; then
  cat >"$tmp/json_round_trip.py" <<'EOF'
import json
data = {"items": [{"id": i, "name": "item%d" % i, "tags": ["t%d" % (i % 7), "u%d" % (i % 13)],
                   "price": i * 0.5, "nested": {"a": [i, i + 1, {"b": str(i) * 3}]}}
                  for i in range(150000)],
        "index": {str(i): i * i for i in range(50000)}}
for _ in range(3):
    text = json.dumps(data, sort_keys=True)
    back = json.loads(text)
    assert back == data
print("json", len(text), sum(x["id"] for x in back["items"]), back["index"]["49999"])
EOF
  run python3-json "$tmp" env PYTHONMALLOC=malloc "$python" "$tmp/json_round_trip.py"
  check python3-json "json 21527292 11249925000 2499900001"

  cat >"$tmp/threads.py" <<'EOF'
import queue, threading
results = queue.Queue()
work = queue.Queue(maxsize=256)
def producer(k):
    for i in range(20000):
        work.put({"k": k, "i": i, "s": "x" * (i % 300), "l": list(range(i % 50))})
def consumer():
    total = 0
    while True:
        item = work.get()
        if item is None:
            break
        total += item["i"] + len(item["s"]) + sum(item["l"])
    results.put(total)
producers = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
consumers = [threading.Thread(target=consumer) for _ in range(4)]
for t in producers + consumers:
    t.start()
for t in producers:
    t.join()
for _ in consumers:
    work.put(None)
for t in consumers:
    t.join()
print("threads", sum(results.get() for _ in consumers))
EOF
  run python3-threads "$tmp" env PYTHONMALLOC=malloc "$python" "$tmp/threads.py"
  check python3-threads "threads 843240000"
else
  skip "python3: /usr/bin/python3 is not installed"
fi

# ---------------------------------------------------------------- perl
if have perl; then
  run perl "$tmp" perl -e '
    my %h;
    for my $i (1 .. 200000) { $h{"key$i"} = 2 * $i; }
    my ($n, $sum) = (0, 0);
    for my $k (keys %h) { if ($k =~ /^key(\d*7)$/) { $n++; $sum += $h{$k}; } }
    my $text = join(",", map { "w$_" } 1 .. 100000);
    (my $swapped = $text) =~ s/w(\d+)/<$1>/g;
    my @parts = split /,/, $swapped;
    print "perl $n $sum ", scalar(@parts), " ", length($swapped), "\n";'
  check perl "perl 20000 4000080000 100000 788894"
else
  skip "perl is not installed"
fi

# ---------------------------------------------------------------- git
if have git; then
  repo=$tmp/repo
  mkdir -p "$repo"
  export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Tester GIT_AUTHOR_EMAIL=tester@example.com \
         GIT_COMMITTER_NAME=Tester GIT_COMMITTER_EMAIL=tester@example.com GIT_PAGER=cat PAGER=cat
  git_ok=1
  run git-init "$repo" git init -q -b main .
  [ "$rc" = 0 ] || git_ok=0
  for i in $(seq 1 200); do seq 1 50 | sed "s/.*/line & of file $i/" >"$repo/f$i.txt"; done
  run git-add "$repo" git add .
  [ "$rc" = 0 ] || git_ok=0
  run git-commit1 "$repo" git commit -q -m "first commit"
  [ "$rc" = 0 ] || git_ok=0
  sed -i 's/line 7 of/LINE SEVEN of/' "$repo/f3.txt"
  run git-commit2 "$repo" git commit -q -a -m "second commit"
  [ "$rc" = 0 ] || git_ok=0
  if [ $git_ok = 1 ]; then
    run git-log "$repo" git log -p --format='commit: %s'
    # The whole log is large; compare a digest of the lines that matter.
    summary=$(grep -E '^(commit: |[-+]line 7 of file 3$|\+LINE SEVEN of file 3$)' "$tmp/git-log.out"; \
              grep -c '^+line' "$tmp/git-log.out")
    printf '%s\n' "$summary" >"$tmp/git-log.out"
    check git-log "$(printf 'commit: second commit\n-line 7 of file 3\n+LINE SEVEN of file 3\ncommit: first commit\n+line 7 of file 3\n10000')"
    run git-fsck "$repo" git fsck --strict --no-progress
    check git-fsck ""
  else
    echo "FAIL: git: init/add/commit failed: $(tail -n 5 "$tmp"/git-*.err)"
    failed=$((failed + 1))
  fi
else
  skip "git is not installed"
fi

# ---------------------------------------------------------------- bash
if have bash; then
  run bash "$tmp" bash -c '
    s=""; declare -a a; declare -A m
    for ((i = 0; i < 20000; i++)); do
      s+="x$i"; a+=("item$i"); m["k$i"]=$((i * 3))
    done
    total=0
    for k in "${!m[@]}"; do total=$((total + m[$k])); done
    joined=$(IFS=,; echo "${a[*]}")
    echo "bash ${#s} ${#a[@]} $total ${#joined}"'
  check bash "bash 108890 20000 599970000 188889"
else
  skip "bash is not installed"
fi

# ---------------------------------------------------------------- gcc
if have gcc; then
  mkdir -p "$tmp/cc"
  cat >"$tmp/cc/primes.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    enum { N = 1000000 };
    char *composite = calloc(N, 1);
    unsigned long long sum = 0;
    for (long i = 2; i < N; i++) {
        if (composite[i]) continue;
        sum += (unsigned long long)i;
        for (long j = i * i; j < N; j += i) composite[j] = 1;
    }
    free(composite);
    printf("primes %llu\n", sum);
    return 0;
}
EOF
  run gcc "$tmp/cc" gcc -O2 -Wall -o primes primes.c
  check gcc ""
  run gcc-program "$tmp/cc" ./primes
  check gcc-program "primes 37550402023"
else
  skip "gcc is not installed"
fi

# ---------------------------------------------------------------- make -j2
if have make && have gcc; then
  proj=$tmp/proj
  mkdir -p "$proj"
  objs=""
  calls=""
  for i in $(seq 1 8); do
    printf 'int part%d(int x) { int s = 0; for (int k = 0; k <= x; k++) s += k * %d; return s; }\n' "$i" "$i" \
      >"$proj/part$i.c"
    objs="$objs part$i.o"
    calls="$calls + part$i(100)"
  done
  {
    for i in $(seq 1 8); do printf 'int part%d(int);\n' "$i"; done
    printf '#include <stdio.h>\nint main(void) { printf("make %%d\\n", 0%s); return 0; }\n' "$calls"
  } >"$proj/main.c"
  printf 'prog: main.o%s\n\t$(CC) -o $@ $^\n%%.o: %%.c\n\t$(CC) -O2 -c -o $@ $<\n' "$objs" >"$proj/Makefile"
  run make "$proj" make -s -j2
  check make ""
  run make-program "$proj" ./prog
  check make-program "make 181800"
else
  skip "make or gcc is not installed"
fi

echo "real programs: $passed passed, $failed failed, $skipped skipped"
if [ $failed -gt 0 ]; then exit 1; fi
if [ $passed -eq 0 ]; then exit 77; fi
exit 0
