#!/usr/bin/env bash
# `make bench`: every benchmark in build/bench, one after the other, then bench/dashboard
# (node + headless chromium; skipped without them). They measure time: run them on an
# otherwise idle machine.
set -euo pipefail
BUILD=${1:-build}
root="$(cd "$(dirname "$0")/.." && pwd)"
cmake --build "$BUILD" --target all
build_abs="$(cd "$BUILD" && pwd)"
status=0
for b in "$BUILD"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b" || status=1
done

# What a route change costs the connections being opened meanwhile (a real Caddy).
echo "== router_reload"
python3 "$root/bench/router_reload.py" || status=1

# The dashboard's environments page with 200 environments beside an empty one (issue 13).
echo "== bench_dashboard"
if command -v node >/dev/null 2>&1; then
  "$root/tests/browser/setup_browser.sh" "$build_abs/npm-browser" >/dev/null
  rc=0
  IDP_BINARY="$build_abs/src/idp" IDP_BROWSER_MODULES="$build_abs/npm-browser/node_modules" \
    node "$root/bench/dashboard/dashboard.mjs" || rc=$?
  # 125: skipped (no chromium or playwright-core), it says why.
  [ "$rc" -eq 0 ] || [ "$rc" -eq 125 ] || status=1
else
  echo "SKIPPED: node not found"
fi
exit $status
