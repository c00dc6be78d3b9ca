#!/usr/bin/env bash
# Installs the packages of the Node interop harness (conflict-tests/js: yjs, y-websocket, ws,
# y-protocols, lib0 at the exact versions of its package-lock.json), which
# conflict-tests/tests/yjs_interop.rs runs. Idempotent and quick when nothing changed: the
# install is skipped while node_modules was made from the current package-lock.json. Installs
# Node.js and npm with apt-get when they are missing (as root or through sudo).
set -euo pipefail
cd "$(dirname "$0")/../conflict-tests/js"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "installing Node.js and npm (the y-websocket interop harness needs them)"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm
fi

stamp=node_modules/.syncline-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
# One install at a time (test processes may call this concurrently).
exec 9>.npm-ci.lock
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
