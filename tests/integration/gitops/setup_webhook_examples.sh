#!/bin/sh
# Installs the webhook payload examples GitHub's Octokit team publishes
# (@octokit/webhooks-examples) into <dir>/node_modules, once: a CTest fixture
# (FIXTURES_SETUP webhook_examples) that the webhook tests require.
#   setup_webhook_examples.sh <dir> <version>
# Without npm it succeeds and does nothing; the tests then skip with the reason.
set -eu
dir="$1"
version="$2"
pkg="$dir/node_modules/@octokit/webhooks-examples/package.json"

if [ -f "$pkg" ] && grep -q "\"version\": \"$version\"" "$pkg"; then
  echo "@octokit/webhooks-examples@$version already installed in $dir"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: webhook tests will be skipped"
  exit 0
fi
mkdir -p "$dir"
npm install --no-save --no-audit --no-fund --prefix "$dir" "@octokit/webhooks-examples@$version"
grep -q "\"version\": \"$version\"" "$pkg"
echo "installed @octokit/webhooks-examples@$version in $dir"
