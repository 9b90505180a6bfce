#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (nothing else depends on
# one): builds restpg against the CUDA build of the same libtorch
# (`scripts/setup.sh --cuda`) into target/cuda, then on CUDA runs one chat
# turn (its answer must name Paris), one training step through the real
# Trainer, and `restpg bench generate` and `bench judge`. Record what it
# prints in BENCHMARKS.md ("GPU check"). Exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="${RESTPG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restpg}"
fail() { echo "gpu-check: FAILED: $*" >&2; exit 1; }

command -v nvidia-smi >/dev/null || fail "no nvidia-smi: this machine has no NVIDIA driver"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
bash scripts/setup.sh --cuda
export LIBTORCH="$CACHE/libtorch-cuda/site/torch" LIBTORCH_BYPASS_VERSION_CHECK=1
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cargo build --release --locked --bin restpg --target-dir target/cuda
B=target/cuda/release/restpg
GGUF="$CACHE/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

echo "== generate on CUDA"
answer=$("$B" generate --model "$GGUF" --device cuda --verbose --max-new-tokens 24 \
  --prompt "What is the capital of France?")
echo "$answer"
grep -q Paris <<<"$answer" || fail "the answer does not name Paris"

echo "== one training step on CUDA (4 x 512 tokens, AdamW)"
"$B" bench train --device cuda --text-file README.md --steps 1 --micro-batch 4 --seq 512 --runs 1

echo "== bench generate on CUDA"
"$B" bench generate --device cuda --prompt-file README.md --prompt-tokens 400 --new-tokens 128 \
  --samples 1,8,32 --temperature 0.7 --top-p 0.9 --runs 3

echo "== bench judge on CUDA"
"$B" bench judge --device cuda --calls 16 --prompt-tokens 600 --runs 3
echo "gpu-check: passed"
