#!/usr/bin/env bash
# Installs the Debian packages mini-idp needs to build, test and run.
# Idempotent: packages already present are skipped; uses sudo when not root.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config make ccache
  # sanitizer and fuzz builds (clang's libFuzzer and runtimes; llvm-symbolizer for stack
  # traces), format check
  clang-14 libclang-rt-14-dev llvm-14 clang-format-14
  # libraries (no vendored copies)
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libsqlite3-dev libpq-dev libcurl4-openssl-dev libssl-dev libexpected-dev libgit2-dev
  libcpp-httplib-dev libsodium-dev libgtest-dev libgmock-dev libbenchmark-dev
  # webhook payloads: simdjson (src/sources/webhook_payload.cpp)
  libsimdjson-dev
  # idp login's OS keychain (Secret Service client)
  libsecret-1-dev
  # runtime: router, git, database, process tools
  caddy git curl ca-certificates procps psmisc iproute2 sqlite3
  postgresql-15 postgresql-client-15
  # tests/docs: the docs suite's runner (standard library only)
  python3
  # tests/security/login_test: a private session bus (dbus-daemon, dbus-run-session), a
  # headless keyring on it, and secret-tool to look into it
  dbus-daemon gnome-keyring libsecret-tools
  # tests/unit/drivers/kubernetes: test certificates for the API-server double's TLS (and
  # pebble's, below)
  openssl
  # tests/unit/drivers/local (https: acme): Let's Encrypt's ACME test server
  pebble
  # tests/browser: the dashboard in a real browser (playwright-core drives it; no download)
  chromium
  # tests/unit/drivers/kubernetes (static-site): the pod's script under busybox, as in the
  # alpine images, and nginx with the server block the pod gets
  busybox nginx-light
)
# Node.js runs the example apps; keep a newer one if the machine already has it. npm installs
# the tests' pinned packages (playwright-core, @octokit/webhooks-examples, s3rver: a local S3).
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
# tests/kubernetes: the real kubectl checks the API-server double; keep one already present.
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps Debian from starting the packaged caddy/postgresql services:
# idp serve starts and supervises its own instances.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
