//! A small GGUF writer for crafting test and fuzz inputs (GGUF spec v3:
//! magic, version, tensor count, metadata count, key/value pairs, tensor
//! infos, data aligned to `general.alignment`; little-endian throughout).
//!
//! It writes whatever it is told, including what the reader must refuse:
//! counts can be overridden, offsets forced, and raw bytes appended.

/// GGUF metadata value type codes.
pub mod ty {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// ggml tensor type codes used by the tests.
pub mod ggml {
    pub const F32: u32 = 0;
    pub const F16: u32 = 1;
    pub const Q4_0: u32 = 2;
    pub const Q4_1: u32 = 3;
    pub const Q8_0: u32 = 8;
    pub const Q6_K: u32 = 14;
}

/// A metadata value as written.
#[derive(Clone, Debug)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    /// Element type code and elements (which should all be of that type,
    /// but need not be).
    Array(u32, Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The value's type code.
    pub fn type_code(&self) -> u32 {
        match self {
            Value::U8(_) => ty::U8,
            Value::I8(_) => ty::I8,
            Value::U16(_) => ty::U16,
            Value::I16(_) => ty::I16,
            Value::U32(_) => ty::U32,
            Value::I32(_) => ty::I32,
            Value::F32(_) => ty::F32,
            Value::Bool(_) => ty::BOOL,
            Value::Str(_) => ty::STRING,
            Value::Array(..) => ty::ARRAY,
            Value::U64(_) => ty::U64,
            Value::I64(_) => ty::I64,
            Value::F64(_) => ty::F64,
        }
    }

    /// An array of strings.
    pub fn strings(items: &[&str]) -> Value {
        Value::Array(ty::STRING, items.iter().map(|s| Value::Str(s.to_string())).collect())
    }
}

/// Appends a GGUF string (u64 length, bytes).
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Appends a value's payload (without its type code).
pub fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::Str(s) => put_str(out, s),
        Value::Array(t, items) => {
            out.extend(t.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, i);
            }
        }
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// One tensor: GGUF dims are innermost first (`[cols, rows]` for a matrix).
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub data: Vec<u8>,
    /// Written instead of the computed offset when set.
    pub offset: Option<u64>,
}

impl TensorSpec {
    /// An f32 tensor with GGUF dims `dims` (innermost first) and `values`.
    pub fn f32(name: &str, dims: &[u64], values: &[f32]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            ggml_type: ggml::F32,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            offset: None,
        }
    }
}

/// A whole file.
#[derive(Clone, Debug)]
pub struct GgufSpec {
    pub version: u32,
    pub meta: Vec<(String, Value)>,
    pub tensors: Vec<TensorSpec>,
    /// Data alignment used for layout (write `general.alignment` in `meta`
    /// yourself to change what the reader uses).
    pub alignment: u64,
    /// Written instead of `tensors.len()` when set.
    pub tensor_count: Option<u64>,
    /// Written instead of `meta.len()` when set.
    pub meta_count: Option<u64>,
    /// Appended after the tensor infos, before the alignment padding.
    pub trailer: Vec<u8>,
}

impl Default for GgufSpec {
    fn default() -> Self {
        GgufSpec {
            version: 3,
            meta: Vec::new(),
            tensors: Vec::new(),
            alignment: 32,
            tensor_count: None,
            meta_count: None,
            trailer: Vec::new(),
        }
    }
}

impl GgufSpec {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.tensor_count.unwrap_or(self.tensors.len() as u64).to_le_bytes());
        out.extend(self.meta_count.unwrap_or(self.meta.len() as u64).to_le_bytes());
        for (k, v) in &self.meta {
            put_str(&mut out, k);
            out.extend(v.type_code().to_le_bytes());
            put_value(&mut out, v);
        }
        let align = self.alignment.max(1) as usize;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut at = 0usize;
        for t in &self.tensors {
            offsets.push(at);
            at = (at + t.data.len()).div_ceil(align) * align;
        }
        for (t, off) in self.tensors.iter().zip(&offsets) {
            put_str(&mut out, &t.name);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.ggml_type.to_le_bytes());
            out.extend(t.offset.unwrap_or(*off as u64).to_le_bytes());
        }
        out.extend(&self.trailer);
        let start = out.len().div_ceil(align) * align;
        out.resize(start, 0);
        for (t, off) in self.tensors.iter().zip(&offsets) {
            out.resize(start + off, 0);
            out.extend(&t.data);
        }
        out
    }
}

/// Deterministic small weights.
fn weights(n: usize, salt: u32) -> Vec<f32> {
    (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ salt) % 1000) as f32 / 1000.0 - 0.5).collect()
}

/// A complete, loadable Llama GGUF with `layers` layers: hidden 8, 2 heads
/// of 4, 1 KV head, feed-forward 16, a 6-token byte-level BPE vocabulary
/// (`a`, `b`, `ab`, `Ġ`, `<|im_start|>`, `<|im_end|>`), f32 weights.
pub fn tiny_llama(layers: usize) -> GgufSpec {
    let (hidden, heads, kv_heads, head_dim, ff, vocab) = (8u64, 2u64, 1u64, 4u64, 16u64, 6u64);
    let s = |v: &str| Value::Str(v.into());
    let mut meta = vec![
        ("general.architecture".to_string(), s("llama")),
        ("general.name".to_string(), s("tiny")),
        ("general.alignment".to_string(), Value::U32(32)),
        ("llama.context_length".to_string(), Value::U32(64)),
        ("llama.embedding_length".to_string(), Value::U32(hidden as u32)),
        ("llama.feed_forward_length".to_string(), Value::U32(ff as u32)),
        ("llama.block_count".to_string(), Value::U32(layers as u32)),
        ("llama.attention.head_count".to_string(), Value::U32(heads as u32)),
        ("llama.attention.head_count_kv".to_string(), Value::U32(kv_heads as u32)),
        ("llama.rope.freq_base".to_string(), Value::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon".to_string(), Value::F32(1e-5)),
        ("llama.vocab_size".to_string(), Value::U32(vocab as u32)),
        ("tokenizer.ggml.model".to_string(), s("gpt2")),
        ("tokenizer.ggml.pre".to_string(), s("smollm")),
    ];
    meta.push(("tokenizer.ggml.tokens".into(), Value::strings(&["a", "b", "ab", "Ġ", "<|im_start|>", "<|im_end|>"])));
    meta.push((
        "tokenizer.ggml.token_type".into(),
        Value::Array(ty::I32, [1, 1, 1, 1, 3, 3].into_iter().map(Value::I32).collect()),
    ));
    meta.push(("tokenizer.ggml.merges".into(), Value::strings(&["a b"])));
    meta.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(4)));
    meta.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(5)));
    let mut tensors = vec![
        TensorSpec::f32("token_embd.weight", &[hidden, vocab], &weights((hidden * vocab) as usize, 1)),
        TensorSpec::f32("output_norm.weight", &[hidden], &vec![1.0; hidden as usize]),
    ];
    for l in 0..layers {
        let m = |name: &str, cols: u64, rows: u64, salt: u32| {
            TensorSpec::f32(&format!("blk.{l}.{name}.weight"), &[cols, rows], &weights((cols * rows) as usize, salt))
        };
        tensors.push(TensorSpec::f32(&format!("blk.{l}.attn_norm.weight"), &[hidden], &vec![1.0; hidden as usize]));
        tensors.push(m("attn_q", hidden, heads * head_dim, 2));
        tensors.push(m("attn_k", hidden, kv_heads * head_dim, 3));
        tensors.push(m("attn_v", hidden, kv_heads * head_dim, 4));
        tensors.push(m("attn_output", heads * head_dim, hidden, 5));
        tensors.push(TensorSpec::f32(&format!("blk.{l}.ffn_norm.weight"), &[hidden], &vec![1.0; hidden as usize]));
        tensors.push(m("ffn_gate", hidden, ff, 6));
        tensors.push(m("ffn_up", hidden, ff, 7));
        tensors.push(m("ffn_down", ff, hidden, 8));
    }
    GgufSpec { meta, tensors, ..GgufSpec::default() }
}
