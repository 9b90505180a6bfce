#!/usr/bin/env bash
# The README's main command: set-up (idempotent, cached), a release build,
# then the REST-PG demo on the real demo corpora with the embedded defaults.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --locked --bin restpg
exec "${CARGO_TARGET_DIR:-target}/release/restpg" demo "$@"
