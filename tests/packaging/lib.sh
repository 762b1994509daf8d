# Helpers shared by the packaging test scripts; source after setting $tmp
# (a scratch directory).  Failures set status=1 and print one FAIL line.
status=0
fail() { echo "FAIL: $*"; status=1; }
run() {  # run WANTED_EXIT command...; leaves stdout in $out, stderr in $err
  local want=$1; shift
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  out=$(cat "$tmp/out") err=$(cat "$tmp/err")
  [ $rc -eq "$want" ] || fail "'$*' exited $rc, wanted $want (stdout: $out; stderr: $err)"
}
has() { grep -qF -- "$2" <<<"$1" || fail "missing '$2' in: $1"; }
