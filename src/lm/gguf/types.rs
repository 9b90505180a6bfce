//! The value types of the format: metadata values and ggml tensor types
//! with their block sizes.

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
    pub(super) fn from_id(id: u32) -> Option<Self> {
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
