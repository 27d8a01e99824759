#!/usr/bin/env bash
# `make run`: start `idp serve` in the foreground on the embedded default (SQLite, local
# processes, Caddy) and provision the bundled example app as a preview environment.
# Ctrl-C stops the server cleanly (and the environment's processes with it).
set -euo pipefail
IDP=${1:-build/src/idp}
IDP=$(cd "$(dirname "$IDP")" && pwd)/$(basename "$IDP")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${IDP_HOME:-}" ]; then
  if [ "$(id -u)" -eq 0 ]; then IDP_HOME=/var/lib/idp; else IDP_HOME=$HOME/.local/share/idp; fi
fi
export IDP_HOME
DEMO_REPO=$IDP_HOME/demo/api-service
LISTEN=${IDP_LISTEN:-127.0.0.1:8787}

# The example app as a git repository with a feature branch: what a developer pushes.
if [ ! -d "$DEMO_REPO/.git" ] || ! diff -rq --exclude=.git "$ROOT/examples/api-service" "$DEMO_REPO" >/dev/null 2>&1; then
  rm -rf "$DEMO_REPO"
  mkdir -p "$DEMO_REPO"
  cp -r "$ROOT/examples/api-service/." "$DEMO_REPO/"
  git -C "$DEMO_REPO" init -q -b main
  git -C "$DEMO_REPO" add -A
  git -C "$DEMO_REPO" -c user.name=idp-demo -c user.email=demo@idp.local commit -qm "api-service example"
  git -C "$DEMO_REPO" checkout -qb feature/demo
fi

# Another server on 8787? Then take any free port; the CLI finds it through IDP_HOME.
if (exec 3<>/dev/tcp/${LISTEN%:*}/${LISTEN##*:}) 2>/dev/null; then
  LISTEN=127.0.0.1:0
fi

"$IDP" serve --listen "$LISTEN" &
SERVE=$!
trap 'kill -INT $SERVE 2>/dev/null || true; wait $SERVE 2>/dev/null || true' INT TERM

for _ in $(seq 1 300); do
  [ -f "$IDP_HOME/daemon.json" ] && grep -q "\"pid\": $SERVE" "$IDP_HOME/daemon.json" && break
  kill -0 $SERVE 2>/dev/null || { wait $SERVE; exit 1; }
  sleep 0.1
done

if ! "$IDP" status preview-demo >/dev/null 2>&1 || "$IDP" status preview-demo --json | grep -q '"phase": "destroyed"'; then
  "$IDP" create --repo "$DEMO_REPO" --branch feature/demo
fi
URL=$("$IDP" status preview-demo --json | sed -n 's/.*"url": "\(http[^"]*\)".*/\1/p' | head -1)
cat <<MSG

  Preview environment "preview-demo" is up: ${URL}
  Try:   curl ${URL}health
         $IDP list            (IDP_HOME=$IDP_HOME)
         $IDP logs preview-demo --follow
  Ctrl-C stops the server.

MSG
wait $SERVE
