#!/usr/bin/env bash
# The test command (README.md, "Run the tests"): formatting, lints, every Rust
# test, the crate-boundary invariants of ARCHITECTURE.md, and the libsodium
# interoperability check. Works on a fresh machine: it installs the Python
# side (PyNaCl for the interop check, aiosmtpd for the e-mail notifier's
# test) into target/test-venv itself.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "binaries (the multi-process tests run sherdd and sherdctl)"
cargo build --workspace --bins --locked

step "Python packages for the tests (target/test-venv)"
venv=target/test-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r interop/requirements.txt -r scripts/requirements.txt

step "tests (cargo test --workspace)"
# The e-mail notifier's test sends to a real SMTP server (aiosmtpd) on
# 127.0.0.1; here it must run, not skip.
SHERD_TEST_PYTHON="$PWD/$venv/bin/python" SHERD_REQUIRE_SMTP_TEST=1 \
    cargo test --workspace --locked

step "invariant: sherd-protocol depends on no async runtime, network or store"
forbidden=$(cargo tree -p sherd-protocol -e normal --prefix none --locked \
    | grep -E '^(tokio|libp2p|redb|axum|hyper|mio|socket2) ' || true)
if [ -n "$forbidden" ]; then
    echo "sherd-protocol must stay pure, but it depends on:" >&2
    echo "$forbidden" >&2
    exit 1
fi
echo "ok"

step "invariant: sherdctl and sherd-testnet do not link the daemon's internals"
for crate in sherd-cli sherd-testnet; do
    leaked=$(cargo tree -p "$crate" -e normal --prefix none --locked \
        | grep -E '^(sherd-daemon|libp2p|redb) ' || true)
    if [ -n "$leaked" ]; then
        echo "$crate must depend on sherd-api only, but it depends on:" >&2
        echo "$leaked" >&2
        exit 1
    fi
done
echo "ok"

step "interoperability with libsodium (PyNaCl)"
"$venv/bin/python" interop/check_vectors.py

printf '\nall checks passed\n'
