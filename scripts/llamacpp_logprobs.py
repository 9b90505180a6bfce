#!/usr/bin/env python3
"""llama.cpp's view of a GGUF, for checking `restpg model export`.

Reads a JSON request on stdin: {"prompts": [[ids]...], "new_tokens": N,
"context": [ids], "text": [ids]} and writes one JSON object to stdout:
{"greedy": [[ids]...]} (N greedy tokens after each prompt, argmax of the
logits, end-of-sequence not special) and {"logprobs": [...]} (the natural-log
probability of each token of "text" after "context"). Runs llama.cpp on the
CPU through llama-cpp-python (installed by `scripts/setup.sh --llamacpp`).
Exits non-zero with a message on stderr on any failure.
"""

import json
import sys

import numpy as np
from llama_cpp import Llama


def fail(msg):
    print(f"llamacpp_logprobs: {msg}", file=sys.stderr)
    sys.exit(2)


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def main():
    if len(sys.argv) != 2:
        fail("usage: llamacpp_logprobs.py MODEL.gguf < request.json")
    try:
        req = json.load(sys.stdin)
        prompts, n, context, text = req["prompts"], int(req["new_tokens"]), req["context"], req["text"]
    except (ValueError, KeyError, TypeError) as e:
        fail(f"bad request on stdin: {e!r}")
    longest = max([len(p) for p in prompts] + [len(context) + len(text)]) + n + 8
    llm = Llama(model_path=sys.argv[1], n_ctx=longest, n_batch=longest, logits_all=True,
                n_threads=2, n_threads_batch=2, verbose=False, seed=0)
    greedy = []
    for p in prompts:
        llm.reset()
        llm.eval(p)
        out = []
        for _ in range(n):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            out.append(tok)
            llm.eval([tok])
        greedy.append(out)
    llm.reset()
    llm.eval(context + text)
    lps = []
    for i, tok in enumerate(text):
        row = llm.scores[len(context) + i - 1]
        lps.append(float(log_softmax(row)[tok]))
    json.dump({"greedy": greedy, "logprobs": lps}, sys.stdout)


if __name__ == "__main__":
    main()
