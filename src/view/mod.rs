//! # `restpg view`: a local, read-only web page over run logs
//!
//! `restpg view RUN_DIR [RUN_DIR…]` serves pages rendered from each run's
//! event log alone (its data set and evaluation reports add texts and
//! per-example scores): the runs; a run's configuration, state, stage wall
//! times, checkpoints with hashes, evaluations per task with paired t-tests
//! against θ¹, and reward check; an iteration's reward histogram by
//! decision with the τ line, D_t with its seal and verification, kept per
//! input and its M-step's training curve; the filtered, sorted, paged
//! sample table; a sample with its input, retrieved profile items,
//! reasoning, response, expected output, judge distribution, decision and
//! the records behind it; and two evaluations compared per task.
//!
//! - `live.rs`: one run, folded once and kept current by a thread that
//!   follows the log (through the writer's reader socket while a run
//!   writes); a corrupt record stops the fold there and is named on every
//!   page.
//! - `query.rs`: the sample table's typed query and its paging.
//! - `charts.rs`: SVG charts drawn on the server with plotters.
//! - `pages.rs`: each page's context; `server.rs`: actix-web, GET only,
//!   minijinja templates (`templates/`, embedded) with auto-escaping, so a
//!   profile or response holding HTML shows as text.
//!
//! It shows users' personal text, so it binds to 127.0.0.1 unless told
//! otherwise, and nothing it serves writes anything.

mod charts;
mod live;
mod pages;
mod query;
mod server;

pub use live::{LiveRun, LogProblem, RunData, Snapshot};
pub use pages::enc;
pub use server::{bind, environment, Bound, ViewOptions};
