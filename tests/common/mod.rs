//! Helpers shared by `tests/bad_input.rs` and `tests/fuzz.rs`.
#![allow(dead_code)]

pub mod alloc;
pub mod gguf_writer;
