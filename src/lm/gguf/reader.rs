//! The container parser: header, metadata pairs and tensor table, every
//! count and length checked against the bytes left; tensor data read lazily
//! from the memory map.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::dequant::dequantize;
use super::{GgmlType, GgufError, GgufValue};

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
    /// Each metadata pair's byte range in the file, in file order.
    meta_spans: Vec<(String, Range<usize>)>,
    data: Backing,
}

/// The tensor data alignment when `general.alignment` is absent (GGUF spec).
pub const DEFAULT_ALIGNMENT: usize = 32;

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
    meta_spans: Vec<(String, Range<usize>)>,
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
    let mut meta_spans = Vec::with_capacity(n_kv.min(1 << 12));
    for i in 0..n_kv {
        let at = c.pos;
        let key = c.string(&format!("metadata key #{i}"))?;
        let ty = c.u32(&format!("type of {key}"))?;
        let v = c.value(ty, &format!("value of {key}"))?;
        meta_spans.push((key.clone(), at..c.pos));
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
        None => DEFAULT_ALIGNMENT,
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
    Ok(Parsed { version, meta, meta_spans, tensors })
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
        let Parsed { version, meta, meta_spans, tensors } = parse_header(path, backing.bytes())?;
        Ok(GgufFile { path: path.to_path_buf(), version, meta, meta_spans, tensors, data: backing })
    }

    /// Each metadata pair as stored, in file order: (key, its bytes from the
    /// key's length through the end of its value). A writer copies these to
    /// keep every value's exact type (llama.cpp checks them: a `u32` key
    /// written as `u64` is refused), which [`GgufValue`] does not keep.
    pub fn raw_metadata(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let bytes = self.data.bytes();
        self.meta_spans.iter().map(move |(k, r)| (k.as_str(), &bytes[r.clone()]))
    }

    /// Where tensor data starts, as `general.alignment` (default 32) says.
    pub fn alignment(&self) -> usize {
        match self.meta.get("general.alignment") {
            Some(GgufValue::U64(a)) => *a as usize,
            _ => DEFAULT_ALIGNMENT,
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
