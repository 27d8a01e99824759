#!/bin/sh
# Installs kubernetes-models (the official Kubernetes OpenAPI schemas compiled into
# validators) into <dir>/node_modules, once: a CTest fixture (FIXTURES_SETUP
# kubernetes_models) that the manifest schema tests require.
#   setup_kubernetes_models.sh <dir> <version>
# Without npm it succeeds and does nothing; the tests then skip with the reason.
set -eu
dir="$1"
version="$2"
pkg="$dir/node_modules/kubernetes-models/package.json"

if [ -f "$pkg" ] && grep -q "\"version\": \"$version\"" "$pkg"; then
  echo "kubernetes-models@$version already installed in $dir"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: manifest schema tests will be skipped"
  exit 0
fi
mkdir -p "$dir"
npm install --no-save --no-audit --no-fund --prefix "$dir" "kubernetes-models@$version"
grep -q "\"version\": \"$version\"" "$pkg"
echo "installed kubernetes-models@$version in $dir"
