#!/usr/bin/env bash
# Installs Schemathesis (the OpenAPI fuzzer that sync-server/tests/schemathesis.rs runs against
# the served /api/v1/openapi.json) from PyPI into a virtualenv under
# ~/.cache/syncline-schemathesis, at the pinned version below. Idempotent and quick when
# nothing changed: the install is skipped while the venv holds that version. Installs python3
# and its venv module with apt-get when they are missing (as root or through sudo).
#
# Prints nothing on success but the install's own output; the `st` binary ends up at
# ~/.cache/syncline-schemathesis/bin/st (the test finds it there, or via SYNCLINE_SCHEMATHESIS).
set -euo pipefail

version=4.32.5
venv="${SYNCLINE_SCHEMATHESIS_VENV:-$HOME/.cache/syncline-schemathesis}"
stamp="$venv/.syncline-schemathesis-version"

mkdir -p "$(dirname "$venv")"
# One install at a time (test processes may call this concurrently).
exec 9>"$venv.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ] && [ -x "$venv/bin/st" ]; then
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "installing python3 and its venv module (Schemathesis runs in a virtualenv)"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv
fi

rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
"$venv/bin/st" --version
echo "$version" >"$stamp"
