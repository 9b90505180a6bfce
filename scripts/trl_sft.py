#!/usr/bin/env python3
"""restpg's M-step on TRL: reward-weighted SFT of a Hugging Face checkpoint on D_t.

The command of `[engine.trainer] backend = "command"`. restpg writes D_t as JSON
Lines (replay/src/export.rs), runs

    $CACHE/trl/venv/bin/python scripts/trl_sft.py \
        --dataset D_t.jsonl --init INIT_DIR --out OUT_DIR --seed N

and loads OUT_DIR as the new checkpoint. The environment comes from
`scripts/setup.sh --trl` (torch, transformers, trl pinned by
scripts/trl-constraints.txt).

Input, one JSON object per line:

    {"prompt": str, "completion": str, "weight": float,
     "input_id": str, "prompt_digest": str, "sample_id": str (optional)}

The loss is the M-step's (REST-PG Algorithm 1, line 11; ReST-EM): for one
optimiser step over an effective batch E,

    L = sum_{i in E} w_i * sum_{t in target(i)} -log p(y_it | y_i<t, x_i) / N_E

with N_E the number of target tokens in E (not weighted), so all-1 weights give
the mean token cross-entropy and a batch of R = 0.5 gets half the gradient.
Prompt tokens are masked (label -100).

How it mirrors restpg's own trainer (each default names the file it follows):

* Tokens (src/engine/tch/trainer.rs, src/lm/tokenizer.rs): the prompt is the
  full chat-formatted text; it is encoded with tokenizer.json as is, special
  token strings (<|im_start|>) becoming their control ids, and nothing added.
  The completion is encoded as plain text (special-token strings in it stay
  text, as restpg's `ChatTokenizer::encode` does) and the template's end of
  turn is appended (<|im_end|> for ChatML, <end_of_turn> for Gemma: the first
  control token the chat template writes after an assistant answer, else the
  model's eos), so the policy learns to stop. The two are encoded separately
  and concatenated, as restpg does. (restpg builds prompt ids segment by
  segment from the template; encoding the rendered text at once gives the
  same ids unless a user's content holds a special-token string.)
* Loss and its normalisation: src/train/loss.rs (above). Examples of weight 0
  are dropped before training and counted (src/train/trainer.rs); with
  --keep-zero-weights they are kept (their tokens count in N_E, their loss is 0).
* Data order (src/train/trainer.rs): every epoch a seeded permutation of the
  examples; an effective batch takes the next --batch-size of them, crossing
  into the next epoch when needed; within a batch the examples are sorted by
  length. (numpy's generator, not restpg's ChaCha8: the same scheme, another
  order.) Micro-batches of --micro-batch-size accumulate gradients.
* Defaults (src/train/config.rs, `TrainConfig::default`, the paper's
  Appendix B): Adafactor (decay rate 0.8, eps 1e-30/1e-3, update clipping 1.0,
  no relative step, no parameter scaling) at learning rate 5e-6; 250 warm-up
  steps, then linear decay to 0.1x at the last step (src/train/schedule.rs);
  10,000 steps; batch 64 in micro-batches of 4; weight decay 0.01 (not on
  norm gains: restpg skips 1-D tensors, transformers skips norm and bias
  names, the same tensors for Llama); gradient clipping at global norm 1.0;
  prompts of at most 5,120 tokens (a longer one is an error) and targets cut
  to 1,536 tokens. AdamW (--optimizer adamw) uses PyTorch's betas 0.9/0.999
  and eps 1e-8, as restpg's. restpg has no epochs: --epochs E is a shorthand
  for --max-steps ceil(E * examples / batch size); --max-steps wins.

TRL's part: the trainer is a subclass of `trl.SFTTrainer` (its data
preparation turns the `completion_mask` column into labels, its collator pads),
with `compute_loss` overridden for the weights (SFTTrainer has no per-sample
weights: the `weight` column is kept through the collator). The data are
tokenized here rather than by TRL's prompt-completion path because TRL encodes
prompt + completion as one string and appends the tokenizer's eos text, which
differs from restpg's targets (see Tokens above).

Output: OUT_DIR in the layout of the init: model.safetensors (float32, the
init's tensor names, so tied embeddings stay tied), and the init's
config.json, generation_config.json, tokenizer.json and tokenizer_config.json
copied unchanged. It is written to OUT_DIR.partial and renamed at the end: a
crash leaves no half checkpoint at OUT_DIR. Progress goes to stderr; at the
end one JSON object goes to stdout:

    {"steps": n, "examples": n, "final_loss": x, "out": path}

Exit codes: 0 done; 2 bad input (the dataset, the init directory or an option;
the message names the file and line); 1 anything else (a failure while
training, e.g. non-finite gradients; no output is written).
"""

import argparse
import json
import math
import os
import shutil
import sys
import time

PROG = "trl_sft"


class BadInput(Exception):
    """An error in what the caller gave: reported on stderr, exit code 2."""


class TrainingFailed(Exception):
    """Training went wrong (not the input's fault as far as we can tell): exit code 1."""


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


# --- arguments ------------------------------------------------------------------


def positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be >= 1")
    return v


def non_negative_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must be >= 0")
    return v


def finite_float(lo=None, lo_open=False, hi=None, hi_open=False):
    def parse(s):
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{s} is not finite")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(f"{v} must be {'>' if lo_open else '>='} {lo}")
        if hi is not None and (v > hi or (hi_open and v == hi)):
            raise argparse.ArgumentTypeError(f"{v} must be {'<' if hi_open else '<='} {hi}")
        return v

    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="trl_sft.py",
        description="restpg's reward-weighted M-step (loss = -R log p(y|x) on completion tokens) on TRL's SFTTrainer.",
    )
    p.add_argument("--dataset", required=True, help="D_t as JSON Lines (restpg export): prompt, completion, weight, ...")
    p.add_argument("--init", required=True, help="Hugging Face directory to start from (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("--out", required=True, help="directory to write the trained model to (written as OUT.partial, then renamed)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the data order (default 0)")
    p.add_argument("--optimizer", choices=["adafactor", "adamw"], default="adafactor", help="default adafactor (restpg's default)")
    p.add_argument("--learning-rate", type=finite_float(0.0, lo_open=True), default=5e-6, help="peak learning rate (default 5e-6)")
    p.add_argument("--warmup-steps", type=non_negative_int, default=250, help="linear warm-up steps (default 250)")
    p.add_argument("--final-lr-fraction", type=finite_float(0.0, hi=1.0), default=0.1, help="learning rate at the last step as a fraction of the peak (default 0.1)")
    p.add_argument("--max-steps", type=positive_int, default=None, help="optimiser steps (default 10000, or from --epochs)")
    p.add_argument("--epochs", type=finite_float(0.0, lo_open=True), default=None, help="passes over the data: sets --max-steps to ceil(epochs * examples / batch size)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="examples per optimiser step (default 64)")
    p.add_argument("--micro-batch-size", type=positive_int, default=4, help="examples per forward pass; gradients are accumulated (default 4)")
    p.add_argument("--weight-decay", type=finite_float(0.0), default=0.01, help="decoupled weight decay, not on norm gains (default 0.01)")
    p.add_argument("--grad-clip-norm", type=finite_float(0.0, lo_open=True), default=1.0, help="global gradient-norm clipping (default 1.0)")
    p.add_argument("--max-prompt-tokens", type=positive_int, default=5120, help="longest prompt; a longer one is an error (default 5120)")
    p.add_argument("--max-completion-tokens", type=positive_int, default=1536, help="longest target, end token included; longer ones are cut (default 1536)")
    p.add_argument("--max-length", type=positive_int, default=None, help="longest prompt + target; the target is cut to fit (default: no limit beyond the two above)")
    p.add_argument("--keep-zero-weights", action="store_true", help="train on examples of weight 0 too (restpg drops them)")
    p.add_argument("--end-token", default=None, help="token appended to every completion (default: the chat template's end of turn)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in the backward pass (less memory, slower)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default auto: cuda when available")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: all cores)")
    args = p.parse_args(argv)
    if args.micro_batch_size > args.batch_size:
        p.error(f"--micro-batch-size {args.micro_batch_size} is over --batch-size {args.batch_size}")
    return args


# --- the data set -----------------------------------------------------------------

FIELDS = {
    "prompt": str,
    "completion": str,
    "weight": float,
    "input_id": str,
    "prompt_digest": str,
}
# `restpg export` names each kept sample; the training sets restpg writes for
# this command (SFT's among them, which has no samples) may not.
OPTIONAL = {"sample_id": str}


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def read_dataset(path):
    """The records of the JSONL file, checked; BadInput naming the file and line."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise BadInput(f"{path}: cannot read the dataset: {e.strerror or e}") from None
    records = []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadInput(f"{where}: not UTF-8 ({e.reason} at byte {e.start})") from None
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as e:
            raise BadInput(f"{where}: malformed JSON: {e}") from None
        if not isinstance(obj, dict):
            raise BadInput(f"{where}: expected a JSON object, got {type(obj).__name__}")
        for name, kind in FIELDS.items():
            if name not in obj:
                hint = " (export D_t with its prompts: `restpg export` rebuilds them)" if name == "prompt" else ""
                raise BadInput(f"{where}: missing field {name!r}{hint}")
            v = obj[name]
            if kind is float:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise BadInput(f"{where}: field 'weight' must be a number, got {json.dumps(v)}")
                v = float(v)
                if not math.isfinite(v) or v < 0:
                    raise BadInput(f"{where}: weight {v} is not finite and >= 0")
                obj[name] = v
            elif not isinstance(v, kind):
                raise BadInput(f"{where}: field {name!r} must be a string, got {json.dumps(v)[:40]}")
        for name, kind in OPTIONAL.items():
            if name in obj and not isinstance(obj[name], kind):
                raise BadInput(f"{where}: field {name!r} must be a string, got {json.dumps(obj[name])[:40]}")
        obj.setdefault("sample_id", f"{obj['input_id']} (line {lineno})")
        obj["_line"] = lineno
        records.append(obj)
    if not records:
        raise BadInput(f"{path}: the dataset is empty (no JSON lines)")
    return records


def check_init(init):
    if not os.path.isdir(init):
        raise BadInput(f"{init}: the init directory does not exist")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not os.path.isfile(os.path.join(init, name)):
            extra = ""
            if name == "model.safetensors" and os.path.isfile(os.path.join(init, "model.safetensors.index.json")):
                extra = " (sharded checkpoints are not supported: one model.safetensors is expected)"
            raise BadInput(f"{init}: the init directory has no {name}{extra}")
    path = os.path.join(init, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise BadInput(f"{path}: cannot read it: {e}") from None
    if not isinstance(cfg, dict):
        raise BadInput(f"{path}: not a JSON object")
    return cfg


def end_of_turn(init, tok, hf_tok, cfg, override):
    """The id appended to every target (src/lm/tokenizer.rs: the first control
    token the chat template writes after an assistant answer, else eos)."""
    added = {i: a for i, a in tok.get_added_tokens_decoder().items()}
    special = {i for i, a in added.items() if a.special}
    if override is not None:
        tid = tok.token_to_id(override)
        if tid is None:
            raise BadInput(f"--end-token {override!r} is not a token of {os.path.join(init, 'tokenizer.json')}")
        return tid, override
    eos = cfg.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0] if eos else None
    template = getattr(hf_tok, "chat_template", None)
    after = None
    if template:
        marker = "\u2063restpg-answer\u2063"
        try:
            rendered = hf_tok.apply_chat_template(
                [{"role": "user", "content": "u"}, {"role": "assistant", "content": marker}], tokenize=False
            )
        except Exception as e:  # a template error is the init directory's fault
            raise BadInput(f"{os.path.join(init, 'tokenizer_config.json')}: the chat template does not render: {e}") from None
        if marker in rendered:
            after = rendered[rendered.rindex(marker) + len(marker):]
    elif tok.token_to_id("<|im_start|>") is not None:
        after = "<|im_end|>\n"  # restpg's built-in ChatML template
    if after:
        for tid in tok.encode(after, add_special_tokens=False).ids:
            if tid in special:
                return tid, tok.id_to_token(tid)
    if isinstance(eos, int):
        return eos, tok.id_to_token(eos)
    raise BadInput(f"{init}: cannot tell the end-of-turn token (no chat template end and no eos_token_id); pass --end-token")


def tokenize(records, path, tok, plain, end_id, args):
    """(examples, stats): each example {input_ids, completion_mask, weight, line}."""
    prompts = tok.encode_batch([r["prompt"] for r in records], add_special_tokens=False)
    completions = plain.encode_batch([r["completion"] for r in records], add_special_tokens=False)
    out, truncated, zero = [], 0, 0
    for r, p, c in zip(records, prompts, completions):
        where = f"{path}:{r['_line']}"
        p_ids, t_ids = list(p.ids), list(c.ids) + [end_id]
        if not p_ids:
            raise BadInput(f"{where}: sample {r['sample_id']}: empty prompt")
        if len(p_ids) > args.max_prompt_tokens:
            raise BadInput(
                f"{where}: sample {r['sample_id']}: prompt has {len(p_ids)} tokens, over --max-prompt-tokens {args.max_prompt_tokens}"
            )
        keep = args.max_completion_tokens
        if args.max_length is not None:
            if len(p_ids) >= args.max_length:
                raise BadInput(
                    f"{where}: sample {r['sample_id']}: prompt has {len(p_ids)} tokens, leaving no room for the completion in --max-length {args.max_length}"
                )
            keep = min(keep, args.max_length - len(p_ids))
        if len(t_ids) > keep:
            t_ids = t_ids[:keep]
            truncated += 1
        if r["weight"] == 0.0 and not args.keep_zero_weights:
            zero += 1
            continue
        out.append(
            {
                "input_ids": p_ids + t_ids,
                "completion_mask": [0] * len(p_ids) + [1] * len(t_ids),
                "weight": r["weight"],
                "target_len": len(t_ids),
            }
        )
    if not out:
        raise BadInput(
            f"{path}: no example has a weight > 0 ({len(records)} given, {zero} of weight 0; restpg's trainer refuses this too)"
        )
    return out, {"truncated": truncated, "zero_weight": zero}


def data_order(examples, steps, batch_size, seed):
    """restpg's order (src/train/trainer.rs): a seeded permutation per epoch, effective
    batches of `batch_size` crossing epochs, each batch sorted by length (stable)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(examples)
    need = steps * batch_size
    flat = []
    while len(flat) < need:
        flat.extend(int(i) for i in rng.permutation(n))
    order, norms = [], []
    for s in range(steps):
        chunk = flat[s * batch_size:(s + 1) * batch_size]
        chunk.sort(key=lambda i: len(examples[i]["input_ids"]))
        order.extend(chunk)
        norms.append(sum(examples[i]["target_len"] for i in chunk))
    return order, norms


def schedule_lr(step, peak, warmup, max_steps, final_fraction):
    """src/train/schedule.rs: the learning rate of optimiser step `step` (1-based)."""
    step = max(step, 1)
    if step <= warmup:
        return peak * step / warmup
    span = max_steps - warmup
    if span <= 0:
        return peak
    progress = min((step - warmup) / span, 1.0)
    return peak * (1.0 - (1.0 - final_fraction) * progress)


# --- output ---------------------------------------------------------------------


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint(model, init, out, torch, save_file, safe_open):
    partial = out.rstrip("/") + ".partial"
    if os.path.lexists(partial):
        shutil.rmtree(partial) if os.path.isdir(partial) and not os.path.islink(partial) else os.remove(partial)
    os.makedirs(partial)
    with safe_open(os.path.join(init, "model.safetensors"), "pt") as f:
        names = list(f.keys())
    state = model.state_dict()
    missing = [n for n in names if n not in state]
    if missing:
        raise TrainingFailed(f"the trained model lacks tensors of the init: {missing[:5]}")
    tensors = {n: state[n].detach().to("cpu", torch.float32).contiguous().clone() for n in names}
    weights = os.path.join(partial, "model.safetensors")
    save_file(tensors, weights, metadata={"format": "pt"})
    for name in sorted(os.listdir(init)):
        src = os.path.join(init, name)
        if name == "model.safetensors" or not os.path.isfile(src):
            continue
        shutil.copy2(src, os.path.join(partial, name))
    for name in os.listdir(partial):
        with open(os.path.join(partial, name), "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(partial)
    old = None
    if os.path.lexists(out):
        old = out.rstrip("/") + f".old-{os.getpid()}"
        os.rename(out, old)
    os.rename(partial, out)
    fsync_dir(os.path.dirname(os.path.abspath(out)) or ".")
    if old:
        shutil.rmtree(old, ignore_errors=True)


# --- training -------------------------------------------------------------------


def train(args, records, real_stdout):
    started = time.time()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("WANDB_DISABLED", "true")

    cfg = check_init(args.init)
    import tokenizers

    tok_path = os.path.join(args.init, "tokenizer.json")
    try:
        tok = tokenizers.Tokenizer.from_file(tok_path)
        plain = tokenizers.Tokenizer.from_file(tok_path)
    except Exception as e:
        raise BadInput(f"{tok_path}: cannot load the tokenizer: {e}") from None
    plain.encode_special_tokens = True  # completion text: special-token strings stay text

    import torch
    import transformers
    import trl
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    transformers.logging.set_verbosity_warning()
    try:
        import datasets as _ds

        _ds.logging.set_verbosity_warning()
        _ds.disable_progress_bars()
    except Exception:
        pass
    if args.threads:
        torch.set_num_threads(args.threads)

    try:
        hf_tok = AutoTokenizer.from_pretrained(args.init)
    except Exception as e:
        raise BadInput(f"{args.init}: transformers cannot load the tokenizer: {e}") from None
    end_id, end_text = end_of_turn(args.init, tok, hf_tok, cfg, args.end_token)
    examples, stats = tokenize(records, args.dataset, tok, plain, end_id, args)
    n = len(examples)

    if args.max_steps is not None:
        steps = args.max_steps
    elif args.epochs is not None:
        steps = max(1, math.ceil(args.epochs * n / args.batch_size))
    else:
        steps = 10_000
    if args.warmup_steps > steps:
        raise BadInput(
            f"--warmup-steps {args.warmup_steps} is over the {steps} optimiser steps (restpg's train config refuses this too); pass --warmup-steps <= {steps}"
        )
    micro = args.micro_batch_size
    while args.batch_size % micro:
        micro -= 1
    if micro != args.micro_batch_size:
        log(f"micro-batch size {args.micro_batch_size} does not divide batch size {args.batch_size}: using {micro} (same gradient)")
    accum = args.batch_size // micro
    order, norms = data_order(examples, steps, args.batch_size, args.seed)

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda: torch sees no CUDA device")

    log(
        f"{len(records)} lines, {n} examples trained on ({stats['zero_weight']} of weight 0 dropped, "
        f"{stats['truncated']} targets cut); end token {end_text!r} ({end_id}); {steps} steps of {args.batch_size} "
        f"({accum} x {micro}); {args.optimizer} lr {args.learning_rate:g}; device {device}, {torch.get_num_threads()} threads"
    )
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")

    try:
        model = AutoModelForCausalLM.from_pretrained(args.init, dtype=torch.float32)
    except Exception as e:
        raise BadInput(f"{args.init}: transformers cannot load the model: {e}") from None
    model.config.use_cache = False

    dataset = Dataset.from_dict(
        {
            "input_ids": [e["input_ids"] for e in examples],
            "completion_mask": [e["completion_mask"] for e in examples],
            "weight": [e["weight"] for e in examples],
        }
    )

    out_abs = os.path.abspath(args.out)
    parent = os.path.dirname(out_abs)
    os.makedirs(parent, exist_ok=True)
    import tempfile

    work = tempfile.mkdtemp(prefix="trl-sft-work-")  # the Trainer's output_dir; nothing is saved there

    sft_args = SFTConfig(
        output_dir=work,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        max_steps=steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        max_grad_norm=args.grad_clip_norm,
        optim="adafactor" if args.optimizer == "adafactor" else "adamw_torch",
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        warmup_steps=0,
        lr_scheduler_type="constant",  # replaced by restpg's schedule in create_scheduler
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        bf16=False,
        fp16=False,
        activation_checkpointing=args.gradient_checkpointing,  # TRL's default is on
        max_length=None,
        packing=False,
        padding_free=False,
        completion_only_loss=True,
        remove_unused_columns=False,
        shuffle_dataset=False,
        # Hugging Face seeds numpy's legacy generator, which takes 32 bits;
        # restpg's seeds are 64-bit (the data order above uses all of them).
        seed=args.seed % 2**32,
        data_seed=args.seed % 2**32,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        log_level="warning",
        push_to_hub=False,
    )

    pad_id = hf_tok.pad_token_id if hf_tok.pad_token_id is not None else end_id
    base_collator = DataCollatorForLanguageModeling(pad_token_id=pad_id)

    def collate(batch):
        out = base_collator([{"input_ids": b["input_ids"], "labels": b["labels"]} for b in batch])
        out["weight"] = torch.tensor([float(b["weight"]) for b in batch], dtype=torch.float32)
        return out

    class FixedOrder(torch.utils.data.Sampler):
        def __init__(self, idx):
            self.idx = idx

        def __iter__(self):
            return iter(self.idx)

        def __len__(self):
            return len(self.idx)

    sched = dict(peak=args.learning_rate, warmup=args.warmup_steps, max_steps=steps, final_fraction=args.final_lr_fraction)

    class WeightedSFTTrainer(SFTTrainer):
        """SFTTrainer with the M-step's reward-weighted loss (src/train/loss.rs)."""

        # compute_loss divides by the effective batch's target tokens itself.
        loss_is_scaled_for_ga = True

        def _get_train_sampler(self, train_dataset=None):
            return FixedOrder(order)

        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                opt = optimizer if optimizer is not None else self.optimizer
                # LambdaLR's k counts the steps taken; step k + 1 uses lr(k + 1).
                self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                    opt, lambda k: schedule_lr(k + 1, **sched) / sched["peak"]
                )
                self._created_lr_scheduler = True
            return self.lr_scheduler

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weight = inputs.pop("weight")
            labels = inputs.pop("labels")
            step = self.state.global_step  # 0-based index of the step being accumulated
            want = norms[step] if step < len(norms) else None
            if num_items_in_batch is None or int(num_items_in_batch) != want:
                raise TrainingFailed(
                    f"internal: step {step + 1} counts {num_items_in_batch} target tokens, the data order says {want}"
                )
            inner = self.accelerator.unwrap_model(model)
            hidden = inner.model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False
            ).last_hidden_state
            targets = labels[:, 1:]
            mask = targets != -100
            # The LM head only on target positions (as restpg's model_target_nll).
            logits = inner.lm_head(hidden[:, :-1][mask]).float()
            nll = torch.nn.functional.cross_entropy(logits, targets[mask], reduction="none")
            w = weight.to(nll.device)[:, None].expand_as(targets)[mask]
            loss = (nll * w).sum() / float(want)
            acc = self._acc
            acc["loss"] += float(loss.detach())
            acc["nll"] += float(nll.detach().sum())
            acc["targets"] += int(mask.sum())
            acc["tokens"] += int(inputs["attention_mask"].sum())
            return (loss, None) if return_outputs else loss

    result = {"final_loss": float("nan"), "steps": 0, "failed": None}

    class Progress(TrainerCallback):
        def __init__(self):
            self.t = time.time()

        def on_log(self, targs, state, control, logs=None, **kw):
            if logs is None or "grad_norm" not in logs:
                return
            acc = trainer._acc
            step = state.global_step
            gn = float(logs["grad_norm"])
            now = time.time()
            log(
                f"step {step}/{steps} loss {acc['loss']:.6f} nll/token {acc['nll'] / max(acc['targets'], 1):.4f} "
                f"lr {schedule_lr(step, **sched):.3g} grad_norm {gn:.4g} tokens {acc['tokens']} "
                f"targets {acc['targets']} ({now - self.t:.2f} s)"
            )
            self.t = now
            if not (math.isfinite(acc["loss"]) and math.isfinite(gn)):
                result["failed"] = f"step {step}: non-finite loss {acc['loss']} or gradient norm {gn}"
                control.should_training_stop = True
            result["final_loss"] = acc["loss"]
            result["steps"] = step
            trainer._acc = {"loss": 0.0, "nll": 0.0, "targets": 0, "tokens": 0}

    try:
        trainer = WeightedSFTTrainer(
            model=model,
            args=sft_args,
            train_dataset=dataset,
            processing_class=hf_tok,
            data_collator=collate,
        )
        trainer._acc = {"loss": 0.0, "nll": 0.0, "targets": 0, "tokens": 0}
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(Progress())
        trainer.train()
        if result["failed"]:
            raise TrainingFailed(result["failed"])
        if result["steps"] != steps:
            raise TrainingFailed(f"training stopped after {result['steps']} of {steps} steps")
        write_checkpoint(trainer.accelerator.unwrap_model(trainer.model), args.init, out_abs, torch, save_file, safe_open)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {out_abs} ({time.time() - started:.1f} s in all)")
    summary = {"steps": result["steps"], "examples": n, "final_loss": result["final_loss"], "out": out_abs}
    real_stdout.write(json.dumps(summary) + "\n")
    real_stdout.flush()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    real_stdout = sys.stdout
    try:
        records = read_dataset(args.dataset)
        # Libraries print to stdout at times; only the final JSON object goes there.
        sys.stdout = sys.stderr
        train(args, records, real_stdout)
    except BadInput as e:
        sys.stdout = real_stdout
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except TrainingFailed as e:
        sys.stdout = real_stdout
        print(f"{PROG}: error: training failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        sys.stdout = real_stdout
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout = real_stdout
    return 0


if __name__ == "__main__":
    sys.exit(main())
