//! A reader for GGUF files (llama.cpp's single-file model format) and the
//! dequantization of its tensor types to f32.
//!
//! Layout (GGUF spec v3, <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>):
//! magic `GGUF`, `u32` version, `u64` tensor count, `u64` metadata count, the
//! metadata key/value pairs, the tensor infos (name, dims innermost first,
//! ggml type, offset), then the tensor data starting at the next multiple of
//! `general.alignment` (default 32). Everything is little-endian.
//!
//! Block layouts follow ggml's `ggml-common.h` (`block_q4_0`, `block_q4_1`,
//! `block_q5_0`, `block_q5_1`, `block_q8_0`, `block_q4_K`, `block_q5_K`,
//! `block_q6_K`) and the arithmetic of the `dequantize_row_*` functions in
//! `ggml/src/ggml-quants.c`; this is our own implementation of those
//! formulas. The file is memory-mapped and every read is bounds-checked, so a
//! truncated or corrupt file gives a [`GgufError`] naming the file (and the
//! tensor), never a panic.
//!
//! Nothing is allocated on the word of a header alone: every count and length
//! (tensors, metadata pairs, array elements, string bytes) is checked against
//! the bytes left in the file, at the smallest size one item can take, before
//! anything is reserved for it; arrays nest at most [`MAX_ARRAY_NESTING`]
//! levels; tensor shapes are checked for overflow and must fit `i64` (ggml's
//! `ne`); and tensor data must lie inside the file.

use half::{bf16, f16};
use memmap2::Mmap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How deeply GGUF metadata arrays may nest (an array of arrays is depth 2).
/// The spec allows nesting; llama.cpp writes none, so this is generous while
/// keeping the recursive reader's stack bounded.
pub const MAX_ARRAY_NESTING: usize = 8;

/// The fewest bytes one tensor-table entry can take: name length (8), dims
/// count (4), type (4), offset (8).
const MIN_TENSOR_INFO_BYTES: usize = 24;

/// The fewest bytes one metadata pair can take: key length (8), value type
/// (4), a one-byte value.
const MIN_KV_BYTES: usize = 13;

/// Errors from reading a GGUF file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The header or metadata is malformed or ends early.
    #[error("{path}: corrupt or truncated GGUF header at byte {offset}: {what}")]
    Header {
        /// The file.
        path: PathBuf,
        /// Byte offset where reading failed.
        offset: usize,
        /// What was being read.
        what: String,
    },
    /// A metadata key is missing or has the wrong type.
    #[error("{path}: metadata key {key}: {what}")]
    Meta {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// A tensor's data is missing, out of bounds or of an unsupported type.
    #[error("{path}: tensor {tensor}: {what}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's GGUF name.
        tensor: String,
        /// What is wrong.
        what: String,
    },
}

/// A GGUF metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// Any unsigned integer type (u8/u16/u32/u64).
    U64(u64),
    /// Any signed integer type (i8/i16/i32/i64).
    I64(i64),
    /// f32 or f64.
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// Array of values.
    Array(Vec<GgufValue>),
}

/// ggml tensor types this reader knows (ids from `ggml.h`'s `enum ggml_type`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// 32-value blocks: f16 scale, 4-bit values offset by 8.
    Q4_0,
    /// 32-value blocks: f16 scale and min, 4-bit values.
    Q4_1,
    /// 32-value blocks: f16 scale, 5-bit values offset by 16.
    Q5_0,
    /// 32-value blocks: f16 scale and min, 5-bit values.
    Q5_1,
    /// 32-value blocks: f16 scale, signed 8-bit values.
    Q8_0,
    /// 256-value super-blocks of 8×32, 6-bit scales and mins, 4-bit values.
    Q4K,
    /// 256-value super-blocks of 8×32, 6-bit scales and mins, 5-bit values.
    Q5K,
    /// 256-value super-blocks of 16×16, 8-bit scales, 6-bit values.
    Q6K,
}

impl GgmlType {
    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            30 => Self::Bf16,
            _ => return None,
        })
    }

    /// (values per block, bytes per block).
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::Bf16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q4K => (256, 144),
            Self::Q5K => (256, 176),
            Self::Q6K => (256, 210),
        }
    }
}

/// One tensor's entry in the GGUF tensor table.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// GGUF name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Shape in PyTorch order (outermost first; GGUF stores innermost first).
    pub shape: Vec<usize>,
    /// Storage type.
    pub ty: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub start: usize,
    /// Byte length of the data.
    pub len: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A memory-mapped, parsed GGUF file.
pub struct GgufFile {
    /// The file's path (named in every error).
    pub path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata key/value pairs.
    pub meta: HashMap<String, GgufValue>,
    /// Tensor table in file order.
    pub tensors: Vec<TensorInfo>,
    data: Backing,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(GgufError::Header {
                path: self.path.to_path_buf(),
                offset: self.pos,
                what: format!("{what}: needs {n} bytes, file has {}", self.buf.len()),
            }),
        }
    }
    fn u8(&mut self, what: &str) -> Result<u8, GgufError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, GgufError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn err(&self, what: String) -> GgufError {
        GgufError::Header { path: self.path.to_path_buf(), offset: self.pos, what }
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// A count of items that take at least `min_item` bytes each, refused
    /// when that many could not fit in the rest of the file (so a corrupt
    /// count never sizes an allocation).
    fn count(&mut self, min_item: usize, what: &str) -> Result<usize, GgufError> {
        let at = self.pos;
        let n = self.u64(what)?;
        let left = self.remaining();
        if n > (left / min_item.max(1)) as u64 {
            return Err(GgufError::Header {
                path: self.path.to_path_buf(),
                offset: at,
                what: format!(
                    "{what}: {n} items of at least {min_item} bytes each cannot fit in the {left} bytes left"
                ),
            });
        }
        Ok(n as usize)
    }
    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.count(1, what)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|e| self.err(format!("{what}: invalid UTF-8: {e}")))
    }
    fn value(&mut self, ty: u32, what: &str) -> Result<GgufValue, GgufError> {
        self.value_at(ty, what, 0)
    }
    /// A value of type `ty`; `depth` counts the arrays around it.
    fn value_at(&mut self, ty: u32, what: &str, depth: usize) -> Result<GgufValue, GgufError> {
        Ok(match ty {
            0 => GgufValue::U64(self.u8(what)? as u64),
            1 => GgufValue::I64(self.u8(what)? as i8 as i64),
            2 => GgufValue::U64(self.u16(what)? as u64),
            3 => GgufValue::I64(self.u16(what)? as i16 as i64),
            4 => GgufValue::U64(self.u32(what)? as u64),
            5 => GgufValue::I64(self.u32(what)? as i32 as i64),
            6 => GgufValue::F64(f32::from_bits(self.u32(what)?) as f64),
            7 => GgufValue::Bool(self.u8(what)? != 0),
            8 => GgufValue::Str(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(self.err(format!("{what}: arrays nested deeper than {MAX_ARRAY_NESTING} levels")));
                }
                let item_ty = self.u32(what)?;
                let min_item = min_value_bytes(item_ty)
                    .ok_or_else(|| self.err(format!("{what}: unknown array element type {item_ty}")))?;
                let n = self.count(min_item, &format!("{what}: array length"))?;
                let mut v = Vec::with_capacity(n.min(1 << 12));
                for _ in 0..n {
                    v.push(self.value_at(item_ty, what, depth + 1)?);
                }
                GgufValue::Array(v)
            }
            10 => GgufValue::U64(self.u64(what)?),
            11 => GgufValue::I64(self.u64(what)? as i64),
            12 => GgufValue::F64(f64::from_bits(self.u64(what)?)),
            t => return Err(self.err(format!("{what}: unknown value type {t}"))),
        })
    }
}

/// The fewest bytes a value of GGUF type `ty` takes, or `None` for an
/// unknown type: a string is at least its 8-byte length, an array its 4-byte
/// element type and 8-byte length.
fn min_value_bytes(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

/// The bytes behind a [`GgufFile`]: a memory map of the file, or a buffer
/// handed to [`GgufFile::from_bytes`].
enum Backing {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// What [`GgufFile::parse`] reads from the bytes.
struct Parsed {
    version: u32,
    meta: HashMap<String, GgufValue>,
    tensors: Vec<TensorInfo>,
}

/// Reads the header, metadata and tensor table from `buf` and checks every
/// tensor's shape, type and data range against it.
fn parse_header(path: &Path, buf: &[u8]) -> Result<Parsed, GgufError> {
    let mut c = Cursor { buf, pos: 0, path };
    let magic = c.take(4, "magic")?;
    if magic != b"GGUF" {
        return Err(GgufError::Header {
            path: path.to_path_buf(),
            offset: 0,
            what: format!("bad magic {magic:?}, expected GGUF"),
        });
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(c.err(format!("unsupported GGUF version {version}")));
    }
    let n_tensors = c.count(MIN_TENSOR_INFO_BYTES, "tensor count")?;
    let n_kv = c.count(MIN_KV_BYTES, "metadata count")?;
    let mut meta = HashMap::new();
    for i in 0..n_kv {
        let key = c.string(&format!("metadata key #{i}"))?;
        let ty = c.u32(&format!("type of {key}"))?;
        let v = c.value(ty, &format!("value of {key}"))?;
        meta.insert(key, v);
    }
    // The count was checked before the metadata was read; check it again
    // against what is left now that the metadata is behind us.
    if n_tensors > c.remaining() / MIN_TENSOR_INFO_BYTES {
        return Err(c.err(format!(
            "tensor count {n_tensors}: cannot fit in the {} bytes left after the metadata",
            c.remaining()
        )));
    }
    let mut raw = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let name = c.string(&format!("tensor name #{i}"))?;
        let nd = c.u32(&format!("dims of {name}"))? as usize;
        if nd > 8 {
            return Err(c.err(format!("tensor {name}: {nd} dimensions")));
        }
        let mut dims = Vec::with_capacity(nd);
        for _ in 0..nd {
            dims.push(c.u64(&format!("dims of {name}"))?);
        }
        let ty_id = c.u32(&format!("type of {name}"))?;
        let off = c.u64(&format!("offset of {name}"))?;
        raw.push((name, dims, ty_id, off));
    }
    let align = match meta.get("general.alignment") {
        Some(GgufValue::U64(a)) if *a > 0 && *a <= u32::MAX as u64 => *a as usize,
        Some(v) if !matches!(v, GgufValue::U64(_)) => {
            return Err(GgufError::Meta {
                path: path.to_path_buf(),
                key: "general.alignment".into(),
                what: format!("{v:?} is not an unsigned integer"),
            })
        }
        Some(v) => {
            return Err(GgufError::Meta {
                path: path.to_path_buf(),
                key: "general.alignment".into(),
                what: format!("{v:?} is not in 1..=2^32-1"),
            })
        }
        None => 32,
    };
    let data_start =
        c.pos.div_ceil(align).checked_mul(align).ok_or_else(|| c.err(format!("alignment {align} overflows")))?;
    let mut tensors = Vec::with_capacity(raw.len());
    for (name, dims, ty_id, off) in raw {
        let terr = |what: String| GgufError::Tensor { path: path.to_path_buf(), tensor: name.clone(), what };
        let ty = GgmlType::from_id(ty_id).ok_or_else(|| terr(format!("unsupported ggml type id {ty_id}")))?;
        // ggml keeps dimensions as int64_t, and so does tch.
        if let Some(d) = dims.iter().find(|&&d| d > i64::MAX as u64) {
            return Err(terr(format!("dimension {d} of shape {dims:?} does not fit in i64")));
        }
        let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        let numel = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= i64::MAX as usize)
            .ok_or_else(|| terr(format!("shape {dims:?}: element count overflows")))?;
        let (bv, bb) = ty.block();
        let row = dims.first().copied().unwrap_or(1);
        if !row.is_multiple_of(bv) {
            return Err(terr(format!("row length {row} is not a multiple of the {ty:?} block size {bv}")));
        }
        let len = (numel / bv)
            .checked_mul(bb)
            .ok_or_else(|| terr(format!("shape {dims:?}: {numel} {ty:?} values overflow a byte length")))?;
        let start = usize::try_from(off)
            .ok()
            .and_then(|o| data_start.checked_add(o))
            .ok_or_else(|| terr(format!("offset {off} overflows")))?;
        if start.checked_add(len).is_none_or(|e| e > buf.len()) {
            return Err(terr(format!(
                "data [{start}, {}) lies past the end of the file ({} bytes): truncated?",
                start.saturating_add(len),
                buf.len()
            )));
        }
        let shape: Vec<usize> = dims.iter().rev().copied().collect();
        tensors.push(TensorInfo { name, shape, ty, start, len });
    }
    Ok(Parsed { version, meta, tensors })
}

impl GgufFile {
    /// Maps and parses the header, metadata and tensor table of `path`.
    /// Tensor data is read lazily by [`GgufFile::tensor_f32`].
    ///
    /// # Errors
    /// [`GgufError`] naming the file for I/O errors, a bad magic, truncated
    /// headers, counts or lengths that cannot fit in the file, arrays nested
    /// deeper than [`MAX_ARRAY_NESTING`], unknown value or ggml type codes
    /// (naming the key or tensor), shapes whose element count overflows, and
    /// tensors whose data would lie past the end of the file.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let io = |source| GgufError::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and the file is not modified by us while mapped;
        // every read below is bounds-checked against the map's length.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::parse(path, Backing::Map(mmap))
    }

    /// Parses a GGUF held in memory, as [`GgufFile::open`] parses a file;
    /// `path` only names the source in errors.
    ///
    /// # Errors
    /// [`GgufError::Header`], [`GgufError::Tensor`] as for
    /// [`GgufFile::open`], naming `path`.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, GgufError> {
        Self::parse(path, Backing::Owned(bytes))
    }

    fn parse(path: &Path, backing: Backing) -> Result<Self, GgufError> {
        let Parsed { version, meta, tensors } = parse_header(path, backing.bytes())?;
        Ok(GgufFile { path: path.to_path_buf(), version, meta, tensors, data: backing })
    }

    /// Whether a tensor of this name exists.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.tensors.iter().any(|t| t.name == name)
    }

    /// The tensor table entry for `name`.
    ///
    /// # Errors
    /// [`GgufError::Tensor`] if absent.
    pub fn info(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensors.iter().find(|t| t.name == name).ok_or_else(|| GgufError::Tensor {
            path: self.path.clone(),
            tensor: name.to_string(),
            what: "not in the file".into(),
        })
    }

    /// Dequantizes tensor `name` to f32 (row-major, shape [`TensorInfo::shape`]).
    ///
    /// # Errors
    /// [`GgufError::Tensor`] if absent or its data is inconsistent.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), GgufError> {
        let info = self.info(name)?;
        let terr = |what: String| GgufError::Tensor { path: self.path.clone(), tensor: name.to_string(), what };
        // `tensors` is public and may have been edited since `open` checked it.
        let bytes = info
            .start
            .checked_add(info.len)
            .and_then(|end| self.data.bytes().get(info.start..end))
            .ok_or_else(|| terr(format!("data at {}+{} lies outside the file", info.start, info.len)))?;
        let numel = info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| terr(format!("shape {:?}: element count overflows", info.shape)))?;
        let data = dequantize(info.ty, bytes, numel).map_err(terr)?;
        Ok((info.shape.clone(), data))
    }

    fn meta_err(&self, key: &str, what: &str) -> GgufError {
        GgufError::Meta { path: self.path.clone(), key: key.into(), what: what.into() }
    }

    /// A string metadata value.
    ///
    /// # Errors
    /// Missing key or not a string.
    pub fn meta_str(&self, key: &str) -> Result<String, GgufError> {
        match self.meta.get(key) {
            Some(GgufValue::Str(s)) => Ok(s.clone()),
            Some(_) => Err(self.meta_err(key, "not a string")),
            None => Err(self.meta_err(key, "missing")),
        }
    }

    /// An optional non-negative integer metadata value.
    ///
    /// # Errors
    /// Present but not a non-negative integer.
    pub fn meta_usize_opt(&self, key: &str) -> Result<Option<usize>, GgufError> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(GgufValue::U64(v)) => Ok(Some(*v as usize)),
            Some(GgufValue::I64(v)) if *v >= 0 => Ok(Some(*v as usize)),
            Some(_) => Err(self.meta_err(key, "not a non-negative integer")),
        }
    }

    /// A required non-negative integer metadata value.
    ///
    /// # Errors
    /// Missing key or wrong type.
    pub fn meta_usize(&self, key: &str) -> Result<usize, GgufError> {
        self.meta_usize_opt(key)?.ok_or_else(|| self.meta_err(key, "missing"))
    }

    /// An optional float metadata value.
    ///
    /// # Errors
    /// Present but not a number.
    pub fn meta_f64_opt(&self, key: &str) -> Result<Option<f64>, GgufError> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(GgufValue::F64(v)) => Ok(Some(*v)),
            Some(GgufValue::U64(v)) => Ok(Some(*v as f64)),
            Some(GgufValue::I64(v)) => Ok(Some(*v as f64)),
            Some(_) => Err(self.meta_err(key, "not a number")),
        }
    }

    /// Length of an array metadata value.
    ///
    /// # Errors
    /// Missing key or not an array.
    pub fn meta_array_len(&self, key: &str) -> Result<usize, GgufError> {
        match self.meta.get(key) {
            Some(GgufValue::Array(a)) => Ok(a.len()),
            Some(_) => Err(self.meta_err(key, "not an array")),
            None => Err(self.meta_err(key, "missing")),
        }
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    ///
    /// # Errors
    /// Missing key, not an array, or an element that is not a string.
    pub fn meta_strings(&self, key: &str) -> Result<Vec<String>, GgufError> {
        match self.meta.get(key) {
            Some(GgufValue::Array(a)) => a
                .iter()
                .map(|v| match v {
                    GgufValue::Str(s) => Ok(s.clone()),
                    _ => Err(self.meta_err(key, "array element is not a string")),
                })
                .collect(),
            Some(_) => Err(self.meta_err(key, "not an array")),
            None => Err(self.meta_err(key, "missing")),
        }
    }

    /// An optional array of integers (e.g. `tokenizer.ggml.token_type`).
    ///
    /// # Errors
    /// Present but not an array of integers.
    pub fn meta_ints_opt(&self, key: &str) -> Result<Option<Vec<i64>>, GgufError> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(GgufValue::Array(a)) => a
                .iter()
                .map(|v| match v {
                    GgufValue::I64(x) => Ok(*x),
                    GgufValue::U64(x) => Ok(*x as i64),
                    _ => Err(self.meta_err(key, "array element is not an integer")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.meta_err(key, "not an array")),
        }
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes
/// of a Q4_K/Q5_K super-block (ggml `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    if j < 4 {
        ((q[j] & 63) as f32, (q[j + 4] & 63) as f32)
    } else {
        let d = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (d as f32, m as f32)
    }
}

/// Dequantizes `numel` values of type `ty` from `bytes` to f32.
///
/// # Errors
/// A message when the byte length does not match `numel`.
pub fn dequantize(ty: GgmlType, bytes: &[u8], numel: usize) -> Result<Vec<f32>, String> {
    let (bv, bb) = ty.block();
    if !numel.is_multiple_of(bv) || (numel / bv).checked_mul(bb) != Some(bytes.len()) {
        return Err(format!("{ty:?}: {} bytes do not hold {numel} values", bytes.len()));
    }
    let mut out = Vec::with_capacity(numel);
    match ty {
        GgmlType::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())),
        GgmlType::Bf16 => out.extend(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())),
        GgmlType::Q4_0 => {
            for b in bytes.chunks_exact(bb) {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in bytes.chunks_exact(bb) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            for b in bytes.chunks_exact(bb) {
                let (d, m, rest) = if ty == GgmlType::Q5_0 {
                    (f16_at(b, 0), 0.0, &b[2..])
                } else {
                    (f16_at(b, 0), f16_at(b, 2), &b[4..])
                };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..20];
                let off = if ty == GgmlType::Q5_0 { 16 } else { 0 };
                let mut hi = [0f32; 16];
                for j in 0..16 {
                    let h0 = ((qh >> j) << 4) & 0x10;
                    let h1 = (qh >> (j + 12)) & 0x10;
                    let x0 = ((qs[j] as u32 & 0x0F) | h0) as i32 - off;
                    let x1 = ((qs[j] as u32 >> 4) | h1) as i32 - off;
                    out.push(x0 as f32 * d + m);
                    hi[j] = x1 as f32 * d + m;
                }
                out.extend_from_slice(&hi);
            }
        }
        GgmlType::Q8_0 => {
            for b in bytes.chunks_exact(bb) {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Q4K => {
            for b in bytes.chunks_exact(bb) {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qs = &b[16..144];
                for (k, q) in qs.chunks_exact(32).enumerate() {
                    let (s1, m1) = scale_min_k4(2 * k, scales);
                    let (s2, m2) = scale_min_k4(2 * k + 1, scales);
                    out.extend(q.iter().map(|&v| d * s1 * (v & 0x0F) as f32 - dmin * m1));
                    out.extend(q.iter().map(|&v| d * s2 * (v >> 4) as f32 - dmin * m2));
                }
            }
        }
        GgmlType::Q5K => {
            for b in bytes.chunks_exact(bb) {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qh = &b[16..48];
                let qs = &b[48..176];
                for (k, q) in qs.chunks_exact(32).enumerate() {
                    let (s1, m1) = scale_min_k4(2 * k, scales);
                    let (s2, m2) = scale_min_k4(2 * k + 1, scales);
                    let (u1, u2) = (1u8 << (2 * k), 2u8 << (2 * k));
                    for l in 0..32 {
                        let h = if qh[l] & u1 != 0 { 16.0 } else { 0.0 };
                        out.push(d * s1 * ((q[l] & 0x0F) as f32 + h) - dmin * m1);
                    }
                    for l in 0..32 {
                        let h = if qh[l] & u2 != 0 { 16.0 } else { 0.0 };
                        out.push(d * s2 * ((q[l] >> 4) as f32 + h) - dmin * m2);
                    }
                }
            }
        }
        GgmlType::Q6K => {
            for b in bytes.chunks_exact(bb) {
                let d = f16_at(b, 208);
                let mut y = [0f32; 256];
                for n in 0..2 {
                    let ql = &b[64 * n..64 * n + 64];
                    let qh = &b[128 + 32 * n..128 + 32 * n + 32];
                    let sc = &b[192 + 8 * n..192 + 8 * n + 8];
                    let y = &mut y[128 * n..128 * n + 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                }
                out.extend_from_slice(&y);
            }
        }
    }
    Ok(out)
}

/// Undoes llama.cpp's `permute` of `attn_q`/`attn_k` rows for a Llama
/// checkpoint: `convert_hf_to_gguf.py` reorders each head's rows from HF's
/// rotate-half layout (first half, second half) to interleaved pairs, i.e.
/// reshape `[heads, 2, head_dim/2, cols]` → swap axes 1,2. This applies the
/// inverse (reshape `[heads, head_dim/2, 2, cols]` → swap 1,2), so HF row
/// `h*D + s*D/2 + i` is taken from GGUF row `h*D + 2i + s`.
///
/// # Errors
/// A message when `rows` is not `heads * head_dim`.
pub fn unpermute_qk(data: &[f32], rows: usize, cols: usize, heads: usize) -> Result<Vec<f32>, String> {
    if heads == 0
        || !rows.is_multiple_of(heads)
        || !(rows / heads).is_multiple_of(2)
        || rows.checked_mul(cols) != Some(data.len())
    {
        return Err(format!("cannot un-permute a [{rows}, {cols}] tensor into {heads} heads"));
    }
    let d = rows / heads;
    let half = d / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for s in 0..2 {
            for i in 0..half {
                let dst = h * d + s * half + i;
                let src = h * d + 2 * i + s;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q8_0_and_q4_0_blocks() {
        let mut b = h(0.5).to_vec();
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let v = dequantize(GgmlType::Q8_0, &b, 32).unwrap();
        assert_eq!(v[0], -8.0);
        assert_eq!(v[31], 7.5);
        let mut b = h(2.0).to_vec();
        b.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
        let v = dequantize(GgmlType::Q4_0, &b, 32).unwrap();
        assert_eq!(v[0], -16.0); // (0 - 8) * 2
        assert_eq!(v[15], 14.0); // (15 - 8) * 2
        assert_eq!(v[16], 14.0); // high nibble of byte 0 = 15
        assert_eq!(v[31], -16.0);
    }

    #[test]
    fn q4_1_and_q5_blocks() {
        let mut b = h(1.0).to_vec();
        b.extend(h(-3.0));
        b.extend((0..16u8).map(|i| i | (1 << 4)));
        let v = dequantize(GgmlType::Q4_1, &b, 32).unwrap();
        assert_eq!(v[5], 2.0);
        assert_eq!(v[20], -2.0);
        // Q5_0: value j's fifth bit is bit j of qh (low half), bit j+16 (high half).
        let mut b = h(1.0).to_vec();
        b.extend(((1u32 << 3) | (1u32 << 20)).to_le_bytes());
        b.extend([0u8; 16]);
        let v = dequantize(GgmlType::Q5_0, &b, 32).unwrap();
        assert_eq!(v[3], 0.0); // 16 - 16
        assert_eq!(v[2], -16.0);
        assert_eq!(v[20], 0.0); // high half, j = 4
        assert_eq!(v[21], -16.0);
    }

    #[test]
    fn q4_k_scales_and_mins() {
        // d = 1, dmin = 1; sub-block 0 scale 2 min 1, sub-block 1 scale 3 min 0,
        // sub-block 4 (j >= 4 packing) scale 5 + (1 << 4) = 21, min 0.
        let mut b = h(1.0).to_vec();
        b.extend(h(1.0));
        let mut sc = [0u8; 12];
        sc[0] = 2;
        sc[4] = 1;
        sc[1] = 3;
        sc[8] = 5; // low 4 bits of scale 4
        sc[0] |= 1 << 6; // bit 4 of scale 4 comes from q[j-4] >> 6
        b.extend(sc);
        b.extend([0x21u8; 128]); // low nibble 1, high nibble 2
        let v = dequantize(GgmlType::Q4K, &b, 256).unwrap();
        assert_eq!(v[0], 2.0 * 1.0 - 1.0);
        assert_eq!(v[32], 3.0 * 2.0);
        assert_eq!(v[128], 21.0 * 1.0);
    }

    #[test]
    fn q6_k_block() {
        let mut b = vec![0u8; 210];
        // ql[0] = 0x05 (q1 low=5, q3 low=0), qh[0] = 0b01 -> q1 = 5 | 16 = 21 - 32 = -11
        b[0] = 0x05;
        b[128] = 0b01;
        b[192] = 3; // sc[0]
        b[192 + 4] = (-2i8) as u8; // sc[4] for q3 of l < 16
        b[208..210].copy_from_slice(&h(0.5));
        let v = dequantize(GgmlType::Q6K, &b, 256).unwrap();
        assert_eq!(v[0], 0.5 * 3.0 * -11.0);
        assert_eq!(v[64], 0.5 * -2.0 * -32.0);
        assert_eq!(v[1], 0.5 * 3.0 * -32.0); // ql = qh = 0 -> q = -32
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // Two heads of dim 4, one column: HF rows 0..8.
        let hf: Vec<f32> = (0..8).map(|x| x as f32).collect();
        // llama.cpp permute: reshape [2, 2, 2] swap axes 1,2.
        let mut gguf = vec![0f32; 8];
        for hh in 0..2 {
            for s in 0..2 {
                for i in 0..2 {
                    gguf[hh * 4 + 2 * i + s] = hf[hh * 4 + s * 2 + i];
                }
            }
        }
        assert_eq!(unpermute_qk(&gguf, 8, 1, 2).unwrap(), hf);
    }

    /// A v3 header with `n_tensors` tensors and `n_kv` metadata pairs.
    fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(n_tensors.to_le_bytes());
        b.extend(n_kv.to_le_bytes());
        b
    }

    fn parse_err(bytes: Vec<u8>) -> String {
        match GgufFile::from_bytes(Path::new("t.gguf"), bytes) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn array_nesting_is_bounded() {
        let nested = |levels: usize| {
            let mut b = header(0, 1);
            b.extend(1u64.to_le_bytes());
            b.push(b'k');
            b.extend(9u32.to_le_bytes());
            for _ in 0..levels - 1 {
                b.extend(9u32.to_le_bytes());
                b.extend(1u64.to_le_bytes());
            }
            b.extend(0u32.to_le_bytes());
            b.extend(1u64.to_le_bytes());
            b.push(5);
            b
        };
        let g = GgufFile::from_bytes(Path::new("t.gguf"), nested(MAX_ARRAY_NESTING)).unwrap();
        assert!(matches!(g.meta["k"], GgufValue::Array(_)));
        let err = parse_err(nested(MAX_ARRAY_NESTING + 1));
        assert!(err.contains("value of k") && err.contains("nested deeper"), "{err}");
    }

    #[test]
    fn counts_are_checked_against_the_bytes_left() {
        // 100 bytes left hold at most 4 tensor infos of 24 bytes.
        let mut b = header(5, 0);
        b.resize(b.len() + 100, 0);
        let err = parse_err(b);
        assert!(err.contains("tensor count: 5 items"), "{err}");
        let mut b = header(0, 1);
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(9u32.to_le_bytes());
        b.extend(10u32.to_le_bytes()); // u64 elements, 8 bytes each
        b.extend(3u64.to_le_bytes());
        b.resize(b.len() + 23, 0);
        let err = parse_err(b);
        assert!(err.contains("value of k: array length: 3 items"), "{err}");
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(dequantize(GgmlType::Q4_1, &[0u8; 19], 32).is_err());
    }
}
