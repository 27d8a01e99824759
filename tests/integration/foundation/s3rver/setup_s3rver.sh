#!/bin/sh
# Installs s3rver (a local S3, npm) from the committed package-lock.json into
# <dir>/node_modules, once (npm ci). A CTest fixture (FIXTURES_SETUP s3rver) that the
# chargeback export tests require; they find <dir>/node_modules/s3rver/bin/s3rver.js.
#   setup_s3rver.sh <dir>
# Without npm it succeeds and says so; the tests then skip with the reason.
set -eu
dir="$1"
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found (scripts/install-deps.sh installs it): the S3 tests will be skipped"
  exit 0
fi
mkdir -p "$dir"
if [ -f "$dir/package-lock.json" ] && cmp -s "$here/package-lock.json" "$dir/package-lock.json" &&
   [ -f "$dir/node_modules/s3rver/package.json" ]; then
  echo "s3rver already installed in $dir"
  exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$dir/"
(cd "$dir" && npm ci --no-audit --no-fund)
test -f "$dir/node_modules/s3rver/bin/s3rver.js"
echo "installed s3rver in $dir"
