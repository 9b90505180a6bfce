//! The OpenAI-compatible engine: roles served by vLLM, SGLang or llama.cpp's
//! server through the completions API (`[engine.policy|generator|judge]
//! backend = "openai"`).
//!
//! - [`client`]: requests, retries with backoff, timeouts, and errors that
//!   name the URL, the status and an excerpt of the reply.
//! - [`server`]: a server restpg launches from a template for each model it
//!   serves, shared by a stage's workers and stopped with them.
//! - [`served`]: the files a server loads (`{gguf}`, `{hf_dir}`) made from a
//!   checkpoint.
//! - [`session`]: one role connected to the server of one model, and the
//!   [`events::EngineInfo`] its records carry.
//! - [`policy`]: sampling and reasoning generation, one request per sample
//!   with the sample's own seed.
//! - [`generator`]: evaluation's generations, one request per example.
//! - [`failure`]: engine failures as retryable or fatal capability errors.
//! - [`judge`]: the LLM judge from the top log-probabilities at the score
//!   position.
//! - [`parallel`]: several requests in flight per worker.

pub mod client;
pub mod failure;
pub mod generator;
pub mod judge;
pub mod parallel;
pub mod policy;
pub mod served;
pub mod server;
pub mod session;

pub use generator::ServedGenerator;
pub use judge::OpenAiScorer;
pub use policy::OpenAiPolicy;
