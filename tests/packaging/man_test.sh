#!/usr/bin/env bash
# The manual pages of the packaging issue: mandoc -T lint reports nothing at
# warning level or above, and man -l renders each with no diagnostics.
#   man_test.sh REPO_DIR
set -u
repo=$1
pages=("$repo/man/btmalloc.3" "$repo/man/btmalloc.7" "$repo/man/btmctl.8")
if ! command -v mandoc >/dev/null || ! command -v man >/dev/null; then
  echo "SKIPPED: needs mandoc and man (Debian packages mandoc and man-db)"
  exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/btm-man-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
status=0
for page in "${pages[@]}"; do
  name=$(basename "$page")
  if ! lint=$(mandoc -T lint -W warning "$page" 2>&1) || [ -n "$lint" ]; then
    echo "FAIL: mandoc -T lint $name: $lint"
    status=1
  fi
  rendered=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" 2>"$tmp/err") || {
    echo "FAIL: man -l $name failed"; status=1; }
  if [ -s "$tmp/err" ]; then
    echo "FAIL: man -l $name: $(cat "$tmp/err")"
    status=1
  fi
  rm -f "$tmp/err"
  grep -q '^NAME' <<<"$rendered" || { echo "FAIL: man -l $name has no NAME section"; status=1; }
  [ $status -eq 0 ] && echo "ok: $name"
done
exit $status
