#!/usr/bin/env bash
# Installs the Python tools of the webhook tests (sync-server/tests/webhooks/): the
# `standardwebhooks` package from PyPI, at the pinned version below, into a virtualenv under
# ~/.cache/syncline-pytools. scripts/webhook_receiver.py runs with that venv's python and
# verifies every delivery with it. Idempotent and quick when nothing changed (the install is
# skipped while the venv holds that version). Installs python3 and its venv module with apt-get
# when they are missing (as root or through sudo).
#
# The python binary ends up at ~/.cache/syncline-pytools/bin/python (the tests find it there,
# or via SYNCLINE_PYTOOLS_VENV).
set -euo pipefail

version=1.1.0
venv="${SYNCLINE_PYTOOLS_VENV:-$HOME/.cache/syncline-pytools}"
stamp="$venv/.syncline-pytools-version"

mkdir -p "$(dirname "$venv")"
# One install at a time (test processes may call this concurrently).
exec 9>"$venv.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ] && [ -x "$venv/bin/python" ]; then
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "installing python3 and its venv module (the webhook receiver runs in a virtualenv)"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv
fi

rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "standardwebhooks==$version"
"$venv/bin/python" -c 'import standardwebhooks; print("standardwebhooks", "'"$version"'")'
echo "$version" >"$stamp"
