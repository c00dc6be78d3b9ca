#!/usr/bin/env bash
# The one command that runs every check and test of the workspace (CI runs it via .ci/run).
#
# Works on a fresh Debian machine with only rustup/cargo: it adds the wasm32 target, and
# installs clang (to compile SQLite for wasm32) and the PostgreSQL server binaries (the tests
# start a throwaway cluster per test process) with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/syncline-target}"
# No incremental compilation: CI builds each state once, and incremental data doubled the
# cached target directory (17 GB of 41 GB; the disk filled up on 2026-11-22).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Test clusters are throwaway: no fsync (see sync-server/src/embedded_pg.rs).
export SYNCLINE_PG_FAST="${SYNCLINE_PG_FAST:-1}"

step() {
    printf '\n==> %s\n' "$*"
}

apt_updated=0
apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "error: need root (or sudo) to install: $*" >&2
            exit 1
        fi
    fi
    if [ "$apt_updated" -eq 0 ]; then
        "${sudo[@]}" apt-get update -q
        apt_updated=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# initdb and postgres as the embedded cluster looks for them (besides PATH).
have_pg_server() {
    local dir
    for dir in "${SYNCLINE_PG_BIN_DIR:-}" "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
        if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
            return 0
        fi
    done
    command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}

step "toolchain"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
if ! command -v clang >/dev/null 2>&1; then
    echo "installing clang (builds SQLite for wasm32)"
    apt_install clang
fi
if ! have_pg_server; then
    echo "installing the PostgreSQL server binaries (tests run a private cluster)"
    apt_install postgresql
fi
bash scripts/npm-ci.sh # Node.js + the y-websocket harness of conflict-tests/tests/yjs_interop.rs
bash scripts/schemathesis.sh # Schemathesis (PyPI) for sync-server/tests/schemathesis.rs
bash scripts/aiosmtpd.sh # aiosmtpd (PyPI), the SMTP server of sync-server/tests/email_smtp.rs
bash scripts/pytools.sh # standardwebhooks (PyPI) for the receiver of sync-server/tests/webhooks/
echo "cargo target dir: $CARGO_TARGET_DIR"

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build -p syncline-protocol -p client-core --target wasm32-unknown-unknown"
cargo build -p syncline-protocol -p client-core --target wasm32-unknown-unknown

# Plain `cargo test` (not nextest): tests of one binary share one process and so one
# PostgreSQL cluster, each test in its own database.
step "cargo test --workspace"
cargo test --workspace

step "all checks passed"
