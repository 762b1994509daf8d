#!/bin/sh
# Lints a man page: mandoc (Debian package mandoc) when installed, else
# groff's warnings; exit 77 (skipped) when neither is there.
set -eu
page=$1
if command -v mandoc >/dev/null 2>&1; then
  mandoc -T lint -W warning "$page"
  echo "mandoc: clean"
elif command -v groff >/dev/null 2>&1; then
  out=$(groff -man -ww -z "$page" 2>&1)
  if [ -n "$out" ]; then echo "$out"; exit 1; fi
  echo "groff: clean"
else
  echo "neither mandoc nor groff is installed"
  exit 77
fi
