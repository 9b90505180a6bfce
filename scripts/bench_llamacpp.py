#!/usr/bin/env python3
"""The peer side of `restpg bench generate --peer llamacpp`.

Runs restpg's E-step workload through llama.cpp (llama-cpp-python's
low-level API, installed by `scripts/setup.sh --llamacpp`): for each N, one
prompt (the same token ids restpg used) decoded once for all N sequences
(each prompt token carries every sequence id, so its KV entries serve all N),
then N sequences decoded together, one token each per step, each sampled by
its own chain (temperature, then nucleus, then a draw seeded by the sequence
number), end-of-sequence ignored so that every sequence writes exactly
--new-tokens tokens, as restpg's benchmark does.

Prints one JSON object per N with the figures restpg prints: prefill_tok_s,
prefill_s, decode_tok_s, e2e_tok_s, generated_tokens, wall_s, peak_rss_mib
(medians over --runs runs after one warm-up call). Exits non-zero with a
message on stderr on any failure.
"""

import argparse
import json
import resource
import statistics
import sys
import time

import llama_cpp as L


def fail(msg):
    print(f"bench_llamacpp: {msg}", file=sys.stderr)
    sys.exit(2)


@L.llama_log_callback
def _quiet(level, text, user_data):
    """llama.cpp's own log lines would bury the figures; failures are reported here."""


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def one_call(model, prompt, n, new_tokens, temperature, top_p, threads):
    p = len(prompt)
    cp = L.llama_context_default_params()
    cp.n_ctx = p + n * new_tokens
    cp.n_batch = max(p, n)
    cp.n_ubatch = max(p, n)
    cp.n_seq_max = n
    cp.n_threads = threads
    cp.n_threads_batch = threads
    cp.kv_unified = True
    cp.no_perf = True
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        fail(f"llama_init_from_model failed for N = {n}")
    batch = L.llama_batch_init(max(p, n), 0, n)
    chains = []
    for s in range(n):
        chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        if temperature > 0:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(temperature))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_top_p(top_p, 1))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(s))
        else:
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_greedy())
        chains.append(chain)
    try:
        t0 = time.perf_counter()
        for i, tok in enumerate(prompt):
            batch.token[i] = tok
            batch.pos[i] = i
            batch.n_seq_id[i] = n
            for s in range(n):
                batch.seq_id[i][s] = s
            batch.logits[i] = 1 if i == p - 1 else 0
        batch.n_tokens = p
        if L.llama_decode(ctx, batch) != 0:
            fail(f"llama_decode failed on the {p}-token prompt")
        t1 = time.perf_counter()
        nxt = [L.llama_sampler_sample(chains[s], ctx, p - 1) for s in range(n)]
        generated = n
        for step in range(1, new_tokens):
            for s in range(n):
                batch.token[s] = nxt[s]
                batch.pos[s] = p + step - 1
                batch.n_seq_id[s] = 1
                batch.seq_id[s][0] = s
                batch.logits[s] = 1
            batch.n_tokens = n
            if L.llama_decode(ctx, batch) != 0:
                fail(f"llama_decode failed at step {step} with N = {n}")
            nxt = [L.llama_sampler_sample(chains[s], ctx, s) for s in range(n)]
            generated += n
        t2 = time.perf_counter()
    finally:
        for c in chains:
            L.llama_sampler_free(c)
        L.llama_batch_free(batch)
        L.llama_free(ctx)
    return {"prefill_s": t1 - t0, "decode_s": t2 - t1, "wall_s": t2 - t0, "generated": generated}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a GGUF file")
    ap.add_argument("--prompt-ids", required=True, help="a JSON file: the prompt's token ids")
    ap.add_argument("--samples", required=True, help="comma-separated N")
    ap.add_argument("--new-tokens", type=int, required=True)
    ap.add_argument("--temperature", type=float, required=True)
    ap.add_argument("--top-p", type=float, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--runs", type=int, required=True)
    a = ap.parse_args()
    try:
        with open(a.prompt_ids, encoding="utf-8") as f:
            prompt = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"reading --prompt-ids {a.prompt_ids}: {e}")
    if not prompt or not all(isinstance(t, int) for t in prompt):
        fail(f"--prompt-ids {a.prompt_ids}: not a non-empty list of token ids")
    L.llama_log_set(_quiet, None)
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = L.llama_model_load_from_file(a.model.encode(), mp)
    if not model:
        fail(f"llama.cpp could not load {a.model}")
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    if max(prompt) >= n_vocab:
        fail(f"--prompt-ids: token {max(prompt)} outside the model's {n_vocab} tokens")
    one_call(model, prompt[:8], 1, 2, a.temperature, a.top_p, a.threads)  # warm-up
    for n in (int(x) for x in a.samples.split(",")):
        runs = [one_call(model, prompt, n, a.new_tokens, a.temperature, a.top_p, a.threads) for _ in range(a.runs)]
        med = lambda f: statistics.median(f(r) for r in runs)  # noqa: E731
        print(json.dumps({
            "samples": n,
            "prefill_tok_s": med(lambda r: len(prompt) / r["prefill_s"]),
            "prefill_s": med(lambda r: r["prefill_s"]),
            "decode_tok_s": med(lambda r: r["generated"] / r["decode_s"]),
            "e2e_tok_s": med(lambda r: r["generated"] / r["wall_s"]),
            "generated_tokens": runs[0]["generated"],
            "wall_s": med(lambda r: r["wall_s"]),
            "peak_rss_mib": peak_rss_mib(),
            "engine": f"llama-cpp-python {L.__version__}",
        }), flush=True)
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
