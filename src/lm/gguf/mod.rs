//! A reader and writer of GGUF files (llama.cpp's single-file model format)
//! and the dequantization of its tensor types to f32.
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

//!
//! One part per file: [`reader`] (the container), [`metadata`] (typed
//! metadata reads), [`types`] (value and tensor types), [`dequant`] (the
//! kernels), [`permute`] (llama.cpp's q/k permutation), [`tensors`]
//! (llama.cpp's tensor names and HF-layout tensors), [`writer`] (a checkpoint
//! written back as a GGUF llama.cpp serves), and the resolution of a
//! GGUF into a model configuration (`config.rs`) and a tokenizer
//! (`tokenizer.rs`).

mod config;
pub mod dequant;
mod error;
pub mod metadata;
pub mod permute;
pub mod reader;
pub mod tensors;
mod tokenizer;
pub mod types;
pub mod writer;

pub use dequant::dequantize;
pub use error::GgufError;
pub use permute::{permute_qk, unpermute_qk};
pub use reader::{GgufFile, TensorInfo, MAX_ARRAY_NESTING};
pub use tensors::{gguf_tensor, hf_to_gguf};
pub use types::{GgmlType, GgufValue};
pub use writer::{write_gguf, ExportDtype, ExportSummary};
