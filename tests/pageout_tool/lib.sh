# Helpers for the btm-pageout test scripts (sourced).  Every script starts
# its processes through start_bg, so the cleanup always ends them, and
# uses a temporary swap file only through swap_on, which always swaps off.
tmp=$(mktemp -d)
pids=()
swapfile=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    [ -n "$swapfile" ] && swapoff "$swapfile" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIPPED: $*"; exit 77; }

# start_bg NAME CMD...: runs CMD in the background with argv[1] = a ready
# file; waits for "ready" in it.  Sets $pid_NAME.
start_bg() {
    local name=$1; shift
    "$@" > "$tmp/$name.out" 2>&1 &
    local p=$!
    pids+=("$p")
    printf -v "pid_$name" %s "$p"
    for _ in $(seq 200); do grep -qs ready "$tmp/$name.ready" "$tmp/$name.out" && return 0; sleep 0.05; done
    cat "$tmp/$name.out"
    fail "$name did not start"
}

# start_plain NAME CMD...: a program that says nothing (sleep); sets $pid_NAME.
start_plain() {
    local name=$1; shift
    "$@" > "$tmp/$name.out" 2>&1 &
    pids+=("$!")
    printf -v "pid_$name" %s "$!"
}

# expect_exit NAME STATUS: the background process $pid_NAME ended with STATUS.
expect_exit() {
    local p=pid_$1
    wait "${!p}"
    local st=$?
    [ "$st" = "$2" ] || { cat "$tmp/$1.out"; fail "$1 ended with status $st, expected $2"; }
}

# swap_on: as root, a 256 MiB swap file for this test (the cleanup swaps it
# off); returns 1 with the reason in $swap_why if that is not possible here.
# Not to be called in a subshell: the cleanup must see $swapfile.
swap_on() {
    [ "$(id -u)" = 0 ] || { swap_why="needs root to swapon a temporary swap file"; return 1; }
    fallocate -l 256M "$tmp/swap" 2>/dev/null && chmod 600 "$tmp/swap" &&
        mkswap "$tmp/swap" > /dev/null 2>&1 || { swap_why="cannot make a swap file in $tmp"; return 1; }
    swapfile=$tmp/swap
    swapon "$swapfile" 2>/dev/null || { swapfile=; swap_why="swapon of a temporary file was refused here"; return 1; }
}

vmrss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
