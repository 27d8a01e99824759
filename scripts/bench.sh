#!/usr/bin/env bash
# `make bench`: every benchmark in build/bench, one after the other (they measure time:
# run them on an otherwise idle machine).
set -euo pipefail
BUILD=${1:-build}
cmake --build "$BUILD" --target all
status=0
for b in "$BUILD"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b" || status=1
done
exit $status
