#!/usr/bin/env bash
# The README's test command: set-up (idempotent, cached; with llama.cpp) then
# the whole test suite of the workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# llama.cpp too: the peer benchmark's test runs it.
bash scripts/setup.sh --llamacpp
cargo test --workspace --locked "$@"
