#!/bin/sh
# Installs kubernetes-models (the official Kubernetes OpenAPI schemas compiled into
# validators) and the @kubernetes-models/* packages of the CRDs the driver renders into
# <dir>/node_modules, once: a CTest fixture (FIXTURES_SETUP kubernetes_models) that the
# manifest schema tests require.
#   setup_kubernetes_models.sh <dir> <package>@<version>...
# All in one npm install, so they share @kubernetes-models/base and validate (each
# @kubernetes-models/* package pinned here depends on kubernetes-models ^5.1.0). Without
# npm it succeeds and does nothing; the tests then skip with the reason.
set -eu
dir="$1"
shift

# True when <dir> has <package> at <version> installed.
installed() {
  pkg="$dir/node_modules/${1%@*}/package.json"
  [ -f "$pkg" ] && grep -q "\"version\": \"${1##*@}\"" "$pkg"
}

missing=""
for spec in "$@"; do
  installed "$spec" || missing="$missing $spec"
done
if [ -z "$missing" ]; then
  echo "already installed in $dir: $*"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: manifest schema tests will be skipped"
  exit 0
fi
mkdir -p "$dir"
npm install --no-save --no-audit --no-fund --prefix "$dir" "$@"
for spec in "$@"; do
  installed "$spec"
done
echo "installed in $dir: $*"
