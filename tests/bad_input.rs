//! Crafted and corrupted files give named errors, never a panic and never an
//! allocation sized by an untrusted header (issue 12). Each test crafts its
//! bytes with `common::gguf_writer`; the largest single allocation is
//! measured by `common::alloc`.

mod common;

use common::alloc::{largest_allocation, Tracking};
use common::gguf_writer::{ggml, put_str, put_value, tiny_llama, ty, GgufSpec, TensorSpec, Value};
use restpg::lm::gguf::gguf_tensor;
use restpg::lm::gguf::{GgufError, GgufFile};
use restpg::lm::ModelConfig;

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Writes `bytes` to `crafted.gguf` in a fresh directory and opens it; the
/// directory lives as long as the returned guard.
fn open(bytes: &[u8]) -> (Result<GgufFile, GgufError>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.gguf");
    std::fs::write(&path, bytes).unwrap();
    (GgufFile::open(&path), dir)
}

/// Opens `bytes` and expects an error that names the file and contains
/// every one of `needles`; also checks that no allocation exceeded
/// `16 × file + 1 MiB`.
fn expect_error(bytes: &[u8], needles: &[&str]) -> String {
    let ((res, _dir), largest) = largest_allocation(|| open(bytes));
    let err = match res {
        Ok(_) => panic!("a corrupt file was accepted (expected {needles:?})"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("crafted.gguf"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
    let bound = 16 * bytes.len() + (1 << 20);
    assert!(largest <= bound, "allocated {largest} bytes for a {}-byte file: {err}", bytes.len());
    err
}

/// The header of a file with `n_tensors` tensors and `n_kv` metadata pairs.
fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(n_tensors.to_le_bytes());
    b.extend(n_kv.to_le_bytes());
    b
}

#[test]
fn the_tiny_llama_writer_makes_a_file_the_reader_accepts() {
    let spec = tiny_llama(1);
    let (g, _dir) = open(&spec.to_bytes());
    let g = g.unwrap();
    assert_eq!(g.tensors.len(), spec.tensors.len());
    let cfg = ModelConfig::from_gguf(&g).unwrap();
    assert_eq!((cfg.hidden_size, cfg.num_heads, cfg.head_dim), (8, 2, 4));
    let q = gguf_tensor(&g, &cfg, "model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.size(), [8, 8]);
    restpg::lm::ChatTokenizer::from_gguf(&g).unwrap();
}

#[test]
fn deeply_nested_metadata_arrays_are_refused_by_key() {
    // 200,000 arrays each holding the next: today's recursive reader would
    // overflow its stack.
    let depth = 200_000;
    let mut b = header(0, 1);
    put_str(&mut b, "evil.nested");
    b.extend(ty::ARRAY.to_le_bytes());
    for _ in 0..depth {
        b.extend(ty::ARRAY.to_le_bytes());
        b.extend(1u64.to_le_bytes());
    }
    b.extend(ty::U8.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.push(7);
    expect_error(&b, &["evil.nested", "nested deeper than"]);
}

#[test]
fn moderately_nested_arrays_are_still_read() {
    let mut v = Value::Array(ty::U8, vec![Value::U8(1), Value::U8(2)]);
    for _ in 0..6 {
        v = Value::Array(ty::ARRAY, vec![v]);
    }
    let spec = GgufSpec { meta: vec![("nested".into(), v)], ..GgufSpec::default() };
    let (g, _dir) = open(&spec.to_bytes());
    assert!(g.unwrap().meta.contains_key("nested"));
}

#[test]
fn an_absurd_tensor_count_is_refused_before_allocating() {
    // A 1 MiB file claiming one tensor per byte: today's reader reserves a
    // table entry (~64 bytes) for each before reading any.
    let n = 1 << 20;
    let mut b = header(n, 0);
    b.resize(n as usize, 0);
    expect_error(&b, &["tensor count", "cannot fit"]);
    let mut b = header(u64::MAX, 0);
    b.resize(4096, 0);
    expect_error(&b, &["tensor count"]);
}

#[test]
fn an_absurd_metadata_count_is_refused() {
    let mut b = header(0, u64::MAX / 2);
    b.resize(4096, 0);
    expect_error(&b, &["metadata count", "cannot fit"]);
}

#[test]
fn an_absurd_array_length_is_refused_before_allocating() {
    // A 1 MiB file whose u8 array claims 1 Mi elements but holds 16: today's
    // reader reserves 1 Mi values (32 MiB) up front.
    let mut b = header(0, 1);
    put_str(&mut b, "tokenizer.ggml.token_type");
    b.extend(ty::ARRAY.to_le_bytes());
    b.extend(ty::U32.to_le_bytes());
    b.extend((1u64 << 20).to_le_bytes());
    b.resize(1 << 20, 0);
    expect_error(&b, &["tokenizer.ggml.token_type", "array length"]);
    // Strings take at least 8 bytes each, so fewer fit.
    let mut b = header(0, 1);
    put_str(&mut b, "tokenizer.ggml.tokens");
    b.extend(ty::ARRAY.to_le_bytes());
    b.extend(ty::STRING.to_le_bytes());
    b.extend(1000u64.to_le_bytes());
    b.resize(b.len() + 7999, 0);
    expect_error(&b, &["tokenizer.ggml.tokens", "cannot fit"]);
}

#[test]
fn an_absurd_string_length_is_refused() {
    let mut b = header(0, 1);
    b.extend(u64::MAX.to_le_bytes());
    b.extend(b"key");
    b.resize(64, 0);
    expect_error(&b, &["metadata key #0", "cannot fit"]);
    let mut b = header(0, 1);
    put_str(&mut b, "general.name");
    b.extend(ty::STRING.to_le_bytes());
    b.extend((1u64 << 40).to_le_bytes());
    b.resize(4096, b'x');
    expect_error(&b, &["general.name", "cannot fit"]);
}

#[test]
fn unknown_type_codes_are_named() {
    let spec = GgufSpec {
        tensors: vec![TensorSpec { ggml_type: 99, ..TensorSpec::f32("blk.0.attn_q.weight", &[4], &[0.0; 4]) }],
        ..GgufSpec::default()
    };
    expect_error(&spec.to_bytes(), &["blk.0.attn_q.weight", "ggml type id 99"]);
    let mut b = header(0, 1);
    put_str(&mut b, "general.odd");
    b.extend(42u32.to_le_bytes());
    b.resize(64, 0);
    expect_error(&b, &["general.odd", "unknown value type 42"]);
    // An empty array of an unknown element type is refused too.
    let mut b = header(0, 1);
    put_str(&mut b, "general.empty");
    b.extend(ty::ARRAY.to_le_bytes());
    put_value(&mut b, &Value::Array(77, vec![]));
    expect_error(&b, &["general.empty", "unknown array element type 77"]);
}

#[test]
fn tensor_data_past_the_end_is_refused_by_name() {
    let mut spec =
        GgufSpec { tensors: vec![TensorSpec::f32("output.weight", &[4, 2], &[0.5; 8])], ..GgufSpec::default() };
    spec.tensors[0].offset = Some(1 << 20);
    expect_error(&spec.to_bytes(), &["output.weight", "past the end"]);
    spec.tensors[0].offset = Some(u64::MAX - 3);
    expect_error(&spec.to_bytes(), &["output.weight", "offset"]);
    let mut cut =
        GgufSpec { tensors: vec![TensorSpec::f32("output.weight", &[4, 2], &[0.5; 8])], ..GgufSpec::default() }
            .to_bytes();
    cut.truncate(cut.len() - 4);
    expect_error(&cut, &["output.weight", "truncated"]);
}

#[test]
fn shapes_whose_size_overflows_are_refused_by_name() {
    // 2^62 f32 values: the element count fits in usize but the byte length
    // (×4) does not; today's reader overflows computing it.
    let t = |dims: &[u64]| GgufSpec {
        tensors: vec![TensorSpec { dims: dims.to_vec(), ..TensorSpec::f32("token_embd.weight", &[1], &[0.0]) }],
        ..GgufSpec::default()
    };
    expect_error(&t(&[1 << 62, 1]).to_bytes(), &["token_embd.weight", "overflow"]);
    expect_error(&t(&[1 << 40, 1 << 40]).to_bytes(), &["token_embd.weight", "overflow"]);
    // A zero dimension makes the product 0, but the other dimension still
    // has to fit ggml's (and tch's) i64.
    expect_error(&t(&[0, u64::MAX]).to_bytes(), &["token_embd.weight", "does not fit in i64"]);
    // Q8_0: 32 values per 34-byte block.
    let q = GgufSpec {
        tensors: vec![TensorSpec {
            name: "blk.0.ffn_up.weight".into(),
            dims: vec![1 << 62, 2],
            ggml_type: ggml::Q8_0,
            data: vec![],
            offset: None,
        }],
        ..GgufSpec::default()
    };
    expect_error(&q.to_bytes(), &["blk.0.ffn_up.weight", "overflow"]);
}

/// The tiny Llama with `blk.0.attn_q.weight` replaced by `q`.
fn with_q(q: TensorSpec) -> Vec<u8> {
    let mut spec = tiny_llama(1);
    let i = spec.tensors.iter().position(|t| t.name == "blk.0.attn_q.weight").unwrap();
    spec.tensors[i] = q;
    spec.to_bytes()
}

#[test]
fn a_zero_dimensional_q_tensor_is_a_named_error() {
    // Today `gguf_tensor` indexes `shape[0]` of a 0-d tensor and panics.
    let bytes = with_q(TensorSpec::f32("blk.0.attn_q.weight", &[], &[1.0]));
    let (g, _dir) = open(&bytes);
    let g = g.unwrap();
    let cfg = ModelConfig::from_gguf(&g).unwrap();
    let err = gguf_tensor(&g, &cfg, "model.layers.0.self_attn.q_proj.weight").unwrap_err().to_string();
    assert!(err.contains("crafted.gguf") && err.contains("blk.0.attn_q.weight") && err.contains("shape []"), "{err}");
}

#[test]
fn wrongly_shaped_q_and_k_tensors_are_named_errors() {
    // Three dimensions, one of them 0: today rows * cols overflows.
    let bytes = with_q(TensorSpec::f32("blk.0.attn_q.weight", &[0, 1 << 62, 2], &[]));
    let (g, _dir) = open(&bytes);
    let g = g.unwrap();
    let cfg = ModelConfig::from_gguf(&g).unwrap();
    let err = gguf_tensor(&g, &cfg, "model.layers.0.self_attn.q_proj.weight").unwrap_err().to_string();
    assert!(err.contains("blk.0.attn_q.weight") && err.contains("shape [2, 4611686018427387904, 0]"), "{err}");
    // Rows that do not split into the two heads.
    let bytes = with_q(TensorSpec::f32("blk.0.attn_q.weight", &[8, 3], &[0.0; 24]));
    let (g, _dir) = open(&bytes);
    let g = g.unwrap();
    let err = gguf_tensor(&g, &cfg, "model.layers.0.self_attn.q_proj.weight").unwrap_err().to_string();
    assert!(err.contains("blk.0.attn_q.weight") && err.contains("[3, 8]") && err.contains("2 heads"), "{err}");
    // Whole-model load reports it with the file, not a panic.
    let bytes = with_q(TensorSpec::f32("blk.0.attn_q.weight", &[], &[1.0]));
    let (_, dir) = open(&bytes);
    let err = format!(
        "{:#}",
        restpg::lm::LanguageModel::load(&dir.path().join("crafted.gguf"), tch::Device::Cpu).err().unwrap()
    );
    assert!(err.contains("crafted.gguf") && err.contains("blk.0.attn_q.weight"), "{err}");
}

/// The tiny Llama with metadata `key` set to `v`, and its directory.
fn with_meta(key: &str, v: Value) -> (GgufFile, tempfile::TempDir) {
    let mut spec = tiny_llama(1);
    match spec.meta.iter_mut().find(|(k, _)| k == key) {
        Some(kv) => kv.1 = v,
        None => spec.meta.push((key.into(), v)),
    }
    let (g, dir) = open(&spec.to_bytes());
    (g.unwrap(), dir)
}

#[test]
fn model_metadata_that_would_panic_or_overallocate_is_refused_by_key() {
    // 0 heads and no key_length: today `hidden_size / num_heads` divides by 0.
    let err =
        format!("{:#}", ModelConfig::from_gguf(&with_meta("llama.attention.head_count", Value::U32(0)).0).unwrap_err());
    assert!(err.contains("crafted.gguf") && err.contains("llama.attention.head_count"), "{err}");
    // 2^60 layers: today the loader reserves a block per layer up front.
    let err =
        format!("{:#}", ModelConfig::from_gguf(&with_meta("llama.block_count", Value::U64(1 << 60)).0).unwrap_err());
    assert!(err.contains("llama.block_count") && err.contains("tensors"), "{err}");
    // heads × head_dim overflows: today the loader's shape arithmetic does.
    let err = format!(
        "{:#}",
        ModelConfig::from_gguf(&with_meta("llama.attention.key_length", Value::U64(1 << 62)).0).unwrap_err()
    );
    assert!(err.contains("num_heads * head_dim") && err.contains("overflow"), "{err}");
}
