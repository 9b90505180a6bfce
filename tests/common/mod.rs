//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod alloc;
pub mod cli;
pub mod gguf_writer;
