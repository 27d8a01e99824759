#!/bin/sh
# Installs kubernetes-models (the official Kubernetes OpenAPI schemas compiled into
# validators) and @kubernetes-models/gateway-api (the Gateway API CRDs' schemas, for
# HTTPRoute) into <dir>/node_modules, once: a CTest fixture (FIXTURES_SETUP
# kubernetes_models) that the manifest schema tests require.
#   setup_kubernetes_models.sh <dir> <version> <gateway-api version>
# Both in one npm install, so they share @kubernetes-models/base and validate (gateway-api
# 2.0.0 depends on kubernetes-models ^5.1.0). Without npm it succeeds and does nothing;
# the tests then skip with the reason.
set -eu
dir="$1"
version="$2"
gateway_version="$3"
pkg="$dir/node_modules/kubernetes-models/package.json"
gateway_pkg="$dir/node_modules/@kubernetes-models/gateway-api/package.json"

if [ -f "$pkg" ] && grep -q "\"version\": \"$version\"" "$pkg" &&
  [ -f "$gateway_pkg" ] && grep -q "\"version\": \"$gateway_version\"" "$gateway_pkg"; then
  echo "kubernetes-models@$version and @kubernetes-models/gateway-api@$gateway_version already installed in $dir"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: manifest schema tests will be skipped"
  exit 0
fi
mkdir -p "$dir"
npm install --no-save --no-audit --no-fund --prefix "$dir" "kubernetes-models@$version" \
  "@kubernetes-models/gateway-api@$gateway_version"
grep -q "\"version\": \"$version\"" "$pkg"
grep -q "\"version\": \"$gateway_version\"" "$gateway_pkg"
echo "installed kubernetes-models@$version and @kubernetes-models/gateway-api@$gateway_version in $dir"
