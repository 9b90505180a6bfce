#!/usr/bin/env bash
# The README's test command: set-up (idempotent, cached; with llama.cpp) then
# the whole test suite of the workspace.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# llama.cpp too: the peer benchmark's test runs it; Chromium: the view's
# test loads its pages in a real browser.
bash scripts/setup.sh --llamacpp --browser
cargo test --workspace --locked "$@"
