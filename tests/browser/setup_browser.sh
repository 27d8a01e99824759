#!/bin/sh
# Installs what the dashboard's browser tests need, once: Debian's chromium (apt, when it
# is missing and this user may install packages) and playwright-core from the committed
# package-lock.json into <dir>/node_modules (npm ci; no browser download). A CTest fixture
# (FIXTURES_SETUP browser) that every browser test requires.
#   setup_browser.sh <dir>
# Without npm or chromium it succeeds and says so; the tests then skip with the reason.
set -eu
dir="$1"
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } ||
      echo "cannot install chromium: browser tests will be skipped"
  else
    echo "chromium not found (scripts/install-deps.sh installs it): browser tests will be skipped"
  fi
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: browser tests will be skipped"
  exit 0
fi
mkdir -p "$dir"
if [ -f "$dir/package-lock.json" ] && cmp -s "$here/package-lock.json" "$dir/package-lock.json" &&
   [ -f "$dir/node_modules/playwright-core/package.json" ]; then
  echo "playwright-core already installed in $dir"
  exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$dir/"
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing, but be explicit.
(cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
test -f "$dir/node_modules/playwright-core/package.json"
echo "installed playwright-core in $dir"
