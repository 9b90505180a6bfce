#!/usr/bin/env bash
# The demo's stages on the embedded engine and through llama.cpp's server,
# back to back on one machine (BENCHMARKS.md, "Engines in the same run").
#
# Both runs use configs/llamacpp.toml (the demo with the policy and the judge
# served, and no no-repeat-n-gram guard, which the completions API lacks); the
# embedded run drops its [engine.*] sections, so the two differ only in the
# engine. One EM iteration, no reward check and no evaluation, and the LLM
# judge as the reward (the demo rewards METEOR, which needs no model): the
# stages compared are the E-step (80 samples) and the judge (80 calls); SFT
# and the M-step run on tch in both. Prints the stage table of
# `restpg log stages`.
#
#   scripts/bench-engines.sh [OUT]      # default OUT: /tmp/restpg-bench-engines
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --llamacpp
cargo build --release --locked --bin restpg
restpg="${CARGO_TARGET_DIR:-target}/release/restpg"
out="${1:-/tmp/restpg-bench-engines}"
rm -rf "$out"
mkdir -p "$out"
# The demo's data set (`restpg demo`'s defaults: 10 training users per task,
# 20% validation and test, 80-word texts, seed 0).
"$restpg" data demo --out "$out/data" --train-users 10 --eval-frac 0.2 --max-words 80 --seed 0
sed -e "s|^data = .*|data = \"$out/data\"|" \
    -e 's|^iterations = .*|iterations = 1|' \
    -e 's|^check_per_task = .*|check_per_task = 0|' \
    -e 's|^name = "meteor"|name = "judge"|' \
    -e 's|^test_every_iteration = .*|validation = false\ntest = false|' \
    configs/llamacpp.toml > "$out/llamacpp.toml"
sed -e '/^\[engine\./,$d' "$out/llamacpp.toml" > "$out/tch.toml"
lscpu | grep -E 'Model name|^CPU\(s\)'
for engine in tch llamacpp; do
    /usr/bin/time -f "$engine: %e s wall, %M KiB peak RSS (restpg alone)" \
        "$restpg" train --quiet --config "$out/$engine.toml" --run-dir "$out/$engine" > "$out/$engine.out"
done
"$restpg" log stages "$out/tch" "$out/llamacpp"
