#!/usr/bin/env bash
# Installs aiosmtpd (an SMTP server from PyPI, at the pinned version below) into a virtualenv
# under ~/.cache/syncline-aiosmtpd. sync-server/tests/email_smtp.rs runs scripts/smtp_sink.py
# with that venv's python as the SMTP server the email sender talks to. Idempotent and quick
# when nothing changed (the install is skipped while the venv holds that version). Installs
# python3 and its venv module with apt-get when they are missing (as root or through sudo).
#
# The python binary ends up at ~/.cache/syncline-aiosmtpd/bin/python (the test finds it there,
# or via SYNCLINE_AIOSMTPD_VENV).
set -euo pipefail

version=1.4.6
venv="${SYNCLINE_AIOSMTPD_VENV:-$HOME/.cache/syncline-aiosmtpd}"
stamp="$venv/.syncline-aiosmtpd-version"

mkdir -p "$(dirname "$venv")"
# One install at a time (test processes may call this concurrently).
exec 9>"$venv.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ] && [ -x "$venv/bin/python" ]; then
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "installing python3 and its venv module (aiosmtpd runs in a virtualenv)"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-venv
fi

rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$version"
"$venv/bin/python" -c 'import aiosmtpd; print("aiosmtpd", aiosmtpd.__version__)'
echo "$version" >"$stamp"
