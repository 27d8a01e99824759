#!/bin/sh
# Installs the Kubernetes model packages (official OpenAPI schemas and CRD schemas compiled
# into validators: kubernetes-models, @kubernetes-models/<project>) into <dir>/node_modules,
# once: a CTest fixture (FIXTURES_SETUP kubernetes_models) that the manifest schema tests
# require.
#   setup_kubernetes_models.sh <dir> <package>@<version>...
# Without npm it succeeds and does nothing; the tests then skip with the reason.
set -eu
dir="$1"
shift

installed() { # <package>@<version>: is exactly that version in <dir>/node_modules?
  name="${1%@*}"
  version="${1##*@}"
  [ -f "$dir/node_modules/$name/package.json" ] &&
    grep -q "\"version\": \"$version\"" "$dir/node_modules/$name/package.json"
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
# All of them in one install: they share their dependencies (@kubernetes-models/base, ...).
npm install --no-save --no-audit --no-fund --prefix "$dir" "$@"
for spec in "$@"; do
  installed "$spec" || { echo "$spec did not install in $dir" >&2; exit 1; }
done
echo "installed in $dir: $*"
