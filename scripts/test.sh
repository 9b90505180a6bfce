#!/usr/bin/env bash
# The README's test command: set-up (idempotent, cached) then the whole test
# suite of the workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo test --workspace --locked "$@"
