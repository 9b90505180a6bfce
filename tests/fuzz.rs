//! Fuzzing of everything that reads untrusted bytes (issue 12; results in
//! FUZZING.md): the GGUF reader and what is built on it, the LongLaMP
//! JSON/JSON Lines loader, the run configuration (TOML → validated
//! `RunConfig`) and the event-record decoder (`events::Envelope::decode`).
//!
//! Each target mixes two kinds of input, drawn by proptest: inputs generated
//! from the format's structure (with hostile counts, lengths, shapes and type
//! codes), and seeds from real files (the SmolLM2 GGUF's header, the LongLaMP
//! fixtures, `configs/demo.toml`, the committed event records) under random
//! byte mutations. A target fails on any panic (proptest catches and
//! shrinks it; the smallest input is written to the test's temp directory),
//! on a broken invariant, or when one allocation exceeds `64 × input + 1 MiB`
//! (measured by `common::alloc`): a sign that a header sized it.
//!
//! CI runs each target for 200 cases with a fixed seed (about a second).
//! Long runs: `RESTPG_FUZZ_SECS=600 cargo test --test fuzz -- --nocapture gguf`
//! runs the `gguf` target for ten minutes from a random seed (printed);
//! `RESTPG_FUZZ_SEED=<n>` replays one.

mod common;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::alloc::{largest_allocation, Tracking};
use common::gguf_writer::{ggml, tiny_llama, ty, GgufSpec, TensorSpec, Value as GVal};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

#[global_allocator]
static ALLOC: Tracking = Tracking;

// ---------------------------------------------------------------- driver

/// Runs `check` on inputs from `strategy`: 200 cases with a fixed seed in
/// CI, or for `RESTPG_FUZZ_SECS` seconds in batches of fresh seeds.
fn fuzz<S>(name: &str, strategy: S, check: impl Fn(&S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Bytes,
{
    let secs: Option<u64> = std::env::var("RESTPG_FUZZ_SECS").ok().and_then(|s| s.parse().ok());
    let fixed: Option<u64> = std::env::var("RESTPG_FUZZ_SEED").ok().and_then(|s| s.parse().ok());
    let start = Instant::now();
    let deadline = secs.map(|s| start + Duration::from_secs(s));
    let mut seed = fixed.unwrap_or_else(|| match secs {
        None => 12,
        Some(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    });
    let execs = Cell::new(0u64);
    let mut batches = 0u64;
    loop {
        let cases = if deadline.is_some() { 2000 } else { 200 };
        let config = Config { cases, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() };
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
        let result = runner.run(&strategy, |input| {
            execs.set(execs.get() + 1);
            check(&input)
        });
        batches += 1;
        if let Err(e) = result {
            let (why, input) = match e {
                TestError::Fail(why, input) => (why.to_string(), input),
                TestError::Abort(why) => panic!("fuzz {name}: aborted at seed {seed}: {why}"),
            };
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let file = dir.join(format!("fuzz-{name}-{seed}.bin"));
            let _ = std::fs::write(&file, input.bytes());
            panic!(
                "fuzz {name}: seed {seed}: {why}\nsmallest input ({} bytes) written to {}",
                input.bytes().len(),
                file.display()
            );
        }
        match deadline {
            Some(d) if Instant::now() < d && fixed.is_none() => {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1)
            }
            _ => break,
        }
    }
    eprintln!(
        "fuzz {name}: {} inputs in {:.1} s ({batches} batches, last seed {seed}), no failure; reached: {}",
        execs.get(),
        start.elapsed().as_secs_f64(),
        reached_summary(name)
    );
}

/// How many inputs of each target reached each stage (`target/stage`),
/// printed after a run to show how deep the inputs get.
static REACHED: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn reached(stage: &'static str) {
    *REACHED.lock().unwrap().entry(stage).or_default() += 1;
}

/// `stage: count` of the stages of `target`.
fn reached_summary(target: &str) -> String {
    let prefix = format!("{target}/");
    let map = REACHED.lock().unwrap();
    let parts: Vec<String> =
        map.iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| format!("{k} {v}"))).collect();
    parts.join(", ")
}

/// An input's bytes, to save a failing one.
trait Bytes: std::fmt::Debug {
    fn bytes(&self) -> Vec<u8>;
}

impl Bytes for Vec<u8> {
    fn bytes(&self) -> Vec<u8> {
        self.clone()
    }
}

impl<T: std::fmt::Debug> Bytes for (Vec<u8>, T) {
    fn bytes(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// Fails the case when one allocation during `f` exceeded `64 × len + 1 MiB`.
fn bounded<R>(len: usize, f: impl FnOnce() -> R) -> Result<R, TestCaseError> {
    let (r, largest) = largest_allocation(f);
    let bound = 64 * len + (1 << 20);
    if largest > bound {
        return Err(TestCaseError::fail(format!(
            "allocated {largest} bytes at once for a {len}-byte input (bound {bound})"
        )));
    }
    Ok(r)
}

// ------------------------------------------------------------- mutations

/// Values that sit on the edges of counts, lengths and type codes.
const INTERESTING: [u64; 24] = [
    0,
    1,
    2,
    3,
    7,
    8,
    9,
    12,
    13,
    31,
    32,
    33,
    127,
    128,
    255,
    256,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 62,
    i64::MAX as u64,
    1 << 63,
    u64::MAX,
];

fn interesting() -> impl Strategy<Value = u64> {
    prop_oneof![3 => prop::sample::select(&INTERESTING[..]), 1 => any::<u64>(), 1 => 0u64..4096]
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Int(Index, u8, u64),
    Truncate(Index),
    Delete(Index, u8),
    Duplicate(Index, Index, u8),
    Insert(Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        4 => (any::<Index>(), prop::sample::select(&[1u8, 2, 4, 8][..]), interesting())
            .prop_map(|(i, w, v)| Mutation::Int(i, w, v)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), any::<Index>(), any::<u8>()).prop_map(|(a, b, n)| Mutation::Duplicate(a, b, n)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        if b.is_empty() {
            b.push(0);
        }
        let n = b.len();
        match m {
            Mutation::Flip(i, bit) => b[i.index(n)] ^= 1 << bit,
            Mutation::Set(i, v) => b[i.index(n)] = *v,
            Mutation::Int(i, w, v) => {
                let at = i.index(n);
                for (k, byte) in v.to_le_bytes().iter().take(*w as usize).enumerate() {
                    if at + k < n {
                        b[at + k] = *byte;
                    }
                }
            }
            Mutation::Truncate(i) => b.truncate(i.index(n)),
            Mutation::Delete(i, len) => {
                let at = i.index(n);
                b.drain(at..(at + *len as usize).min(n));
            }
            Mutation::Duplicate(from, to, len) => {
                let at = from.index(n);
                let chunk = b[at..(at + *len as usize).min(n)].to_vec();
                let to = to.index(n);
                b.splice(to..to, chunk);
            }
            Mutation::Insert(i, bytes) => {
                let at = i.index(n);
                b.splice(at..at, bytes.iter().copied());
            }
        }
    }
    b
}

/// A seed from `seeds` under 1–8 mutations (sometimes none).
fn mutated(seeds: &'static [Vec<u8>]) -> impl Strategy<Value = Vec<u8>> {
    (0..seeds.len(), prop::collection::vec(mutation(), 0..8)).prop_map(move |(i, m)| apply(&seeds[i], &m))
}

// ------------------------------------------------------------------ GGUF

/// Seeds: the tiny Llama (f32, and with quantized tensors), and, when the
/// set-up's SmolLM2 GGUF is present, its real metadata (arrays cut to 48
/// elements) with its real tensor table cut to one block of real data per
/// tensor, plus its first 64 KiB as they are.
fn gguf_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut seeds = vec![tiny_llama(1).to_bytes(), tiny_llama(2).to_bytes()];
        let mut q = tiny_llama(1);
        for (t, (code, block, bytes)) in q.tensors.iter_mut().zip(
            [
                (ggml::Q8_0, 32, 34),
                (ggml::Q4_1, 32, 20),
                (ggml::Q6_K, 256, 210),
                (ggml::F16, 1, 2),
                (ggml::Q4_0, 32, 18),
            ]
            .into_iter()
            .cycle(),
        ) {
            t.dims = vec![block, 1];
            t.ggml_type = code;
            t.data = (0..bytes).map(|i| (i * 37 % 251) as u8).collect();
        }
        seeds.push(q.to_bytes());
        let real = restpg::paths::smollm2_gguf();
        if let Ok(g) = restpg::lm::gguf::GgufFile::open(&real) {
            seeds.push(real_structure_seed(&g, &real));
            if let Ok(bytes) = std::fs::read(&real) {
                seeds.push(bytes[..bytes.len().min(64 << 10)].to_vec());
            }
        }
        seeds
    })
}

fn real_structure_seed(g: &restpg::lm::gguf::GgufFile, path: &Path) -> Vec<u8> {
    use restpg::lm::gguf::GgufValue as R;
    fn conv(v: &R) -> GVal {
        match v {
            R::U64(x) => GVal::U64(*x),
            R::I64(x) => GVal::I64(*x),
            R::F64(x) => GVal::F64(*x),
            R::Bool(x) => GVal::Bool(*x),
            R::Str(s) => GVal::Str(s.clone()),
            R::Array(items) => {
                let items: Vec<GVal> = items.iter().take(48).map(conv).collect();
                let t = items.first().map(|v| v.type_code()).unwrap_or(ty::U8);
                GVal::Array(t, items)
            }
        }
    }
    let mut meta: Vec<(String, GVal)> = g.meta.iter().map(|(k, v)| (k.clone(), conv(v))).collect();
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    let raw = std::fs::read(path).unwrap_or_default();
    let tensors = g
        .tensors
        .iter()
        .map(|t| {
            let (bv, bb) = t.ty.block();
            let code = match t.ty {
                restpg::lm::gguf::GgmlType::F32 => 0,
                restpg::lm::gguf::GgmlType::F16 => 1,
                restpg::lm::gguf::GgmlType::Q4_0 => 2,
                restpg::lm::gguf::GgmlType::Q4_1 => 3,
                restpg::lm::gguf::GgmlType::Q5_0 => 6,
                restpg::lm::gguf::GgmlType::Q5_1 => 7,
                restpg::lm::gguf::GgmlType::Q8_0 => 8,
                restpg::lm::gguf::GgmlType::Q4K => 12,
                restpg::lm::gguf::GgmlType::Q5K => 13,
                restpg::lm::gguf::GgmlType::Q6K => 14,
                restpg::lm::gguf::GgmlType::Bf16 => 30,
            };
            TensorSpec {
                name: t.name.clone(),
                dims: vec![bv as u64, 1],
                ggml_type: code,
                data: raw.get(t.start..t.start + bb).map(<[u8]>::to_vec).unwrap_or_else(|| vec![0; bb]),
                offset: None,
            }
        })
        .collect();
    GgufSpec { version: g.version, meta, tensors, ..GgufSpec::default() }.to_bytes()
}

/// Metadata keys the loaders look up, to make generated files reach them.
const GGUF_KEYS: [&str; 16] = [
    "general.architecture",
    "general.alignment",
    "llama.embedding_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.key_length",
    "llama.feed_forward_length",
    "llama.block_count",
    "llama.vocab_size",
    "llama.rope.freq_base",
    "tokenizer.ggml.model",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
];

const TENSOR_NAMES: [&str; 8] = [
    "token_embd.weight",
    "output_norm.weight",
    "output.weight",
    "blk.0.attn_q.weight",
    "blk.0.attn_k.weight",
    "blk.0.attn_v.weight",
    "blk.0.attn_q.bias",
    "blk.0.ffn_down.weight",
];

/// A metadata value, arrays nested up to `depth` levels (beyond the reader's
/// limit, to reach it).
fn gguf_value() -> impl Strategy<Value = GVal> {
    let leaf = prop_oneof![
        any::<u8>().prop_map(GVal::U8),
        any::<i8>().prop_map(GVal::I8),
        any::<u16>().prop_map(GVal::U16),
        any::<i16>().prop_map(GVal::I16),
        interesting().prop_map(|v| GVal::U32(v as u32)),
        any::<i32>().prop_map(GVal::I32),
        any::<f32>().prop_map(GVal::F32),
        any::<bool>().prop_map(GVal::Bool),
        prop_oneof![
            Just("llama".to_string()),
            Just("gpt2".to_string()),
            Just("a b".to_string()),
            Just("smollm".to_string()),
            "[a-z <|>]{0,12}"
        ]
        .prop_map(GVal::Str),
        interesting().prop_map(GVal::U64),
        any::<i64>().prop_map(GVal::I64),
        any::<f64>().prop_map(GVal::F64),
    ];
    leaf.prop_recursive(10, 64, 8, |inner| {
        (prop::collection::vec(inner, 0..8), prop_oneof![4 => 0u32..13, 1 => any::<u32>()]).prop_map(|(items, t)| {
            // Mostly honest element types, so that the reader gets past them.
            let t = items.first().map(|v: &GVal| v.type_code()).filter(|_| t < 13).unwrap_or(t);
            GVal::Array(t, items)
        })
    })
}

fn gguf_tensor_spec() -> impl Strategy<Value = TensorSpec> {
    let dim = prop_oneof![4 => prop::sample::select(&[0u64, 1, 2, 4, 8, 16, 32, 256][..]), 1 => interesting()];
    (
        prop_oneof![3 => prop::sample::select(&TENSOR_NAMES[..]).prop_map(str::to_string), 1 => "[a-z.0-9]{0,16}"],
        prop::collection::vec(dim, 0..5),
        prop_oneof![4 => prop::sample::select(&[0u32, 1, 2, 3, 6, 7, 8, 12, 13, 14, 30][..]), 1 => any::<u32>()],
        prop::collection::vec(any::<u8>(), 0..300),
        prop::option::weighted(0.1, interesting()),
    )
        .prop_map(|(name, dims, ggml_type, data, offset)| TensorSpec { name, dims, ggml_type, data, offset })
}

/// A whole file from parts: metadata, tensors, count overrides.
fn gguf_generated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![6 => Just(3u32), 1 => Just(2u32), 1 => any::<u32>()],
        prop::collection::vec(
            (
                prop_oneof![3 => prop::sample::select(&GGUF_KEYS[..]).prop_map(str::to_string), 1 => "[a-z.]{0,10}"],
                gguf_value(),
            ),
            0..10,
        ),
        prop::collection::vec(gguf_tensor_spec(), 0..6),
        prop::option::weighted(0.1, interesting()),
        prop::option::weighted(0.1, interesting()),
        prop::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(|(version, meta, tensors, tensor_count, meta_count, trailer)| {
            GgufSpec { version, meta, tensors, tensor_count, meta_count, trailer, ..GgufSpec::default() }.to_bytes()
        })
}

/// The HF names `gguf_tensor` is asked for.
const HF_NAMES: [&str; 7] = [
    "model.embed_tokens.weight",
    "model.norm.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.q_proj.bias",
    "model.layers.0.self_attn.v_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
];

fn check_gguf(bytes: &[u8]) -> Result<(), TestCaseError> {
    use restpg::lm::gguf::GgufFile;
    let path = Path::new("fuzz.gguf");
    bounded(bytes.len(), || {
        let g = match GgufFile::from_bytes(path, bytes.to_vec()) {
            Ok(g) => g,
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("fuzz.gguf"), "error does not name the file: {}", msg);
                return Ok(());
            }
        };
        reached("gguf/parsed");
        if !g.tensors.is_empty() {
            reached("gguf/with tensors");
        }
        for t in g.tensors.iter().take(32) {
            if let Err(e) = g.tensor_f32(&t.name) {
                let msg = e.to_string();
                prop_assert!(msg.contains(&t.name), "error does not name the tensor: {}", msg);
            }
        }
        for key in GGUF_KEYS {
            let _ = (g.meta_str(key), g.meta_usize_opt(key), g.meta_f64_opt(key), g.meta_array_len(key));
            let _ = (g.meta_strings(key), g.meta_ints_opt(key));
        }
        if let Ok(cfg) = restpg::lm::ModelConfig::from_gguf(&g) {
            reached("gguf/model config");
            for hf in HF_NAMES {
                if restpg::lm::gguf::gguf_tensor(&g, &cfg, hf).is_ok() && hf.contains("q_proj.weight") {
                    reached("gguf/q un-permuted");
                }
            }
        }
        // Building a BPE is slow for a large vocabulary; the seeds' vocabularies are small.
        if g.meta_array_len("tokenizer.ggml.tokens").is_ok_and(|n| n <= 512)
            && restpg::lm::ChatTokenizer::from_gguf(&g).is_ok()
        {
            reached("gguf/tokenizer");
        }
        Ok(())
    })?
}

#[test]
fn gguf() {
    let strategy = prop_oneof![1 => gguf_generated(), 2 => mutated(gguf_seeds())];
    fuzz("gguf", strategy, |b| check_gguf(b));
}

// -------------------------------------------------------------- LongLaMP

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/longlamp")
}

/// Seeds: the committed JSON and JSON Lines fixtures.
fn longlamp_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut names: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    })
}

const RECORD_KEYS: [&str; 14] = [
    "input",
    "output",
    "profile",
    "id",
    "user_id",
    "author",
    "title",
    "abstract",
    "text",
    "subject",
    "content",
    "reviewText",
    "summary",
    "overall",
];

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value as J;
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(J::Number).unwrap_or(J::Null)),
        "[a-zé \\n\"\\\\]{0,12}".prop_map(J::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
            prop::collection::vec((prop::sample::select(&RECORD_KEYS[..]).prop_map(str::to_string), inner), 0..8)
                .prop_map(|kv| J::Object(kv.into_iter().collect())),
        ]
    })
}

/// A record that is often nearly valid: input, output, a profile of
/// objects with task fields, and random extras.
fn json_record() -> impl Strategy<Value = serde_json::Value> {
    let item =
        prop::collection::vec((prop::sample::select(&RECORD_KEYS[..]).prop_map(str::to_string), json_value()), 0..5)
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect()));
    (
        prop::collection::vec((prop::sample::select(&RECORD_KEYS[..]).prop_map(str::to_string), json_value()), 0..4),
        prop::collection::vec(item, 0..4),
        "[a-z ]{0,8}",
        "[a-z ]{0,8}",
    )
        .prop_map(|(extra, profile, input, output)| {
            let mut o = serde_json::Map::new();
            o.insert("input".into(), input.into());
            o.insert("output".into(), output.into());
            o.insert("profile".into(), serde_json::Value::Array(profile));
            for (k, v) in extra {
                o.insert(k, v);
            }
            serde_json::Value::Object(o)
        })
}

/// A file of generated records: an array, or one per line with blank and
/// CRLF lines mixed in.
fn longlamp_generated() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(prop_oneof![3 => json_record(), 1 => json_value()], 0..6), any::<bool>(), any::<u8>())
        .prop_map(|(records, array, seps)| {
            if array {
                serde_json::to_vec(&records).unwrap()
            } else {
                let mut out = Vec::new();
                for (i, r) in records.iter().enumerate() {
                    out.extend(serde_json::to_vec(r).unwrap());
                    out.extend(if (seps >> (i % 8)) & 1 == 1 { &b"\r\n\n"[..] } else { &b"\n"[..] });
                }
                out
            }
        })
}

fn check_longlamp(bytes: &[u8], (task, ext, skip): (usize, usize, bool)) -> Result<(), TestCaseError> {
    use restpg::data::{parse_longlamp_with, LoadOptions, Task};
    let task = Task::ALL[task];
    let name = ["fuzz.json", "fuzz.jsonl", "fuzz.ndjson"][ext];
    let opts = LoadOptions { skip_invalid: skip };
    bounded(bytes.len(), || {
        match parse_longlamp_with(Path::new(name), bytes, task, &opts) {
            Ok((examples, report)) => {
                reached("longlamp/file read");
                if !examples.is_empty() {
                    reached("longlamp/examples loaded");
                }
                if !report.skipped.is_empty() {
                    reached("longlamp/records skipped");
                }
                prop_assert_eq!(report.loaded, examples.len());
                prop_assert!(report.loaded + report.skipped.len() <= report.records);
                if skip {
                    prop_assert_eq!(report.loaded + report.skipped.len(), report.records);
                } else {
                    prop_assert!(report.skipped.is_empty());
                }
                for e in &examples {
                    prop_assert!(!e.profile.is_empty(), "example {} has an empty profile", e.id);
                }
                for s in &report.skipped {
                    prop_assert!(s.reason.contains(name), "skip reason does not name the file: {}", s.reason);
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.contains(name), "error does not name the file: {}", msg);
            }
        }
        Ok(())
    })?
}

#[test]
fn longlamp() {
    let input = prop_oneof![1 => longlamp_generated(), 2 => mutated(longlamp_seeds())];
    let strategy = (input, (0usize..4, 0usize..3, any::<bool>()));
    fuzz("longlamp", strategy, |(b, opts)| check_longlamp(b, *opts));
}

// ---------------------------------------------------------------- config

/// Seeds: the demo configuration and the defaults as canonical TOML.
fn config_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let demo = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo.toml")).unwrap();
        let defaults = restpg::config::RunConfig::default().to_toml().unwrap().into_bytes();
        vec![demo, defaults]
    })
}

/// `(section, key)` pairs of `RunConfig` (section "" is the top level).
const CONFIG_KEYS: [(&str, &str); 31] = [
    ("", "method"),
    ("", "seed"),
    ("", "data"),
    ("model", "policy"),
    ("model", "threads"),
    ("retrieval", "retriever"),
    ("retrieval", "k"),
    ("sampling", "m"),
    ("sampling", "temperature"),
    ("sampling", "top_p"),
    ("sampling", "max_new_tokens"),
    ("sampling", "batch_size"),
    ("sampling", "workers"),
    ("reward", "name"),
    ("reward", "rule"),
    ("reward", "tau"),
    ("reward", "max_kept_per_input"),
    ("em", "iterations"),
    ("em", "allow_unfinished_samples"),
    ("eval", "temperature"),
    ("eval", "top_p"),
    ("eval", "max_per_task"),
    ("eval", "validation"),
    ("train", "optimizer"),
    ("train", "learning_rate"),
    ("train", "warmup_steps"),
    ("train", "max_steps"),
    ("train", "batch_size"),
    ("train", "micro_batch_size"),
    ("train", "init"),
    ("train.adamw", "beta1"),
];

fn toml_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        prop::sample::select(&INTERESTING[..]).prop_map(|v| v.to_string()),
        Just("0".to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        prop::sample::select(&["nan", "inf", "-inf", "-0.0", "1e400", "0.35", "1.0", "2.5e-7"][..])
            .prop_map(str::to_string),
        any::<bool>().prop_map(|v| v.to_string()),
        prop::sample::select(
            &[
                "\"rest-pg\"",
                "\"sft\"",
                "\"bm25\"",
                "\"dense\"",
                "\"judge\"",
                "\"0.5*judge+0.5*rouge-l\"",
                "\"2*meteor+-1*rouge-1\"",
                "\"expected\"",
                "\"argmax\"",
                "\"adamw\"",
                "\"fresh\"",
                "\"continue\"",
                "\"/\"",
                "\"\"",
                "[]",
                "[1, \"a\"]",
                "{ k = 1 }",
                "1979-05-27T07:32:00Z",
            ][..]
        )
        .prop_map(str::to_string),
        "\"[a-z0-9*+.-]{0,12}\"",
    ]
}

/// A TOML document of known (and some unknown) keys with values of any type.
fn config_generated() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (prop::sample::select(&CONFIG_KEYS[..]), prop::option::weighted(0.1, "[a-z_]{1,6}"), toml_scalar()),
        0..16,
    )
    .prop_map(|entries| {
        let mut by_section: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for ((section, key), odd, value) in entries {
            let key = odd.unwrap_or_else(|| key.to_string());
            by_section.entry(section).or_default().push(format!("{key} = {value}"));
        }
        let mut out = String::new();
        for (section, lines) in by_section {
            if !section.is_empty() {
                out.push_str(&format!("[{section}]\n"));
            }
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
        out.into_bytes()
    })
}

fn check_config(bytes: &[u8]) -> Result<(), TestCaseError> {
    use restpg::config::RunConfig;
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(());
    };
    let path = Path::new("fuzz.toml");
    bounded(bytes.len(), || {
        match RunConfig::from_toml(text, path) {
            Ok(cfg) => {
                reached("config/parsed");
                if cfg.validate().is_ok() {
                    reached("config/valid");
                }
                if let Err(e) = cfg.validate() {
                    let msg = e.to_string();
                    prop_assert!(msg.contains('`'), "validation error names no key: {}", msg);
                }
                // Canonical TOML reads back to the same canonical TOML.
                let canon = cfg.to_toml().map_err(|e| TestCaseError::fail(format!("to_toml: {e}")))?;
                let back = RunConfig::from_toml(&canon, path)
                    .map_err(|e| TestCaseError::fail(format!("canonical TOML does not parse: {e}\n{canon}")))?;
                prop_assert_eq!(back.to_toml().unwrap(), canon);
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("fuzz.toml"), "error does not name the file: {}", msg);
            }
        }
        Ok(())
    })?
}

#[test]
fn config() {
    let strategy = prop_oneof![1 => config_generated(), 1 => mutated(config_seeds())];
    fuzz("config", strategy, |b| check_config(b));
}

// ---------------------------------------------------------------- events

/// Seeds: the committed version-1 records, and each of their payloads
/// sealed again as a current-version record.
fn event_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let file =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("events/tests/fixtures/v1_records.bin")).unwrap();
        let mut seeds = Vec::new();
        let mut rest = &file[..];
        while rest.len() >= 4 {
            let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let record = rest[4..4 + n].to_vec();
            rest = &rest[4 + n..];
            let env = events::Envelope::decode(&record).unwrap();
            let v2 = events::Envelope::seal(env.seq, env.time, &env.run_id, env.payload, env.prev_hash);
            seeds.push(record);
            seeds.push(v2.encode());
        }
        seeds
    })
}

/// A record body: a seed under mutations, or random bytes after a version.
fn event_generated() -> impl Strategy<Value = Vec<u8>> {
    (prop_oneof![Just(1u16), Just(2u16), any::<u16>()], prop::collection::vec(any::<u8>(), 0..200)).prop_map(
        |(v, body)| {
            let mut b = v.to_le_bytes().to_vec();
            b.extend(body);
            b
        },
    )
}

/// Most inputs get a correct hash appended, so the decoder goes past the
/// hash check into the body.
fn check_event(bytes: &[u8], rehash: bool) -> Result<(), TestCaseError> {
    let mut record = bytes.to_vec();
    if rehash {
        let body_end = record.len().saturating_sub(32).max(2.min(record.len()));
        record.truncate(body_end);
        let h = events::digest(&record);
        record.extend_from_slice(&h);
    }
    bounded(record.len(), || {
        match events::Envelope::decode(&record) {
            Err(events::RecordError::Decode { .. }) => reached("events/hash ok, body refused"),
            Ok(_) => {}
            Err(_) => reached("events/refused before the body"),
        }
        if let Ok(env) = events::Envelope::decode(&record) {
            reached("events/decoded");
            prop_assert_eq!(&env.hash[..], &record[record.len() - 32..]);
            let again = env.encode();
            // A canonical encoding decodes and encodes back to itself
            // (compared as bytes: a NaN reward is not equal to itself).
            if again == record {
                let back = events::Envelope::decode(&again);
                prop_assert!(back.is_ok(), "re-encoded record fails: {:?}", back);
                prop_assert_eq!(back.unwrap().encode(), again);
            }
        }
        Ok(())
    })?
}

#[test]
fn events() {
    let strategy = (prop_oneof![2 => mutated(event_seeds()), 1 => event_generated()], prop::bool::weighted(0.9));
    fuzz("events", strategy, |(b, rehash)| check_event(b, *rehash));
}
