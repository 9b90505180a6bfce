//! Progress bars (indicatif) driven by the event log: every newly appended
//! event moves the bar of its stage, so what the user sees is exactly what
//! has been logged.

use std::sync::{Arc, Mutex};

use events::{Event, Stage};
use indicatif::{ProgressBar, ProgressStyle};

use super::context::RunContext;
use crate::data::Split;

/// An observer for [`actors::Capabilities::observer`] that logs every newly
/// appended event at debug level (target `restpg::pipeline`) and, when
/// `bars` is set, shows one bar per stage with counts and ETA on stderr.
/// `e_step_inputs[t − 1]` is the number of inputs iteration t's E-step
/// samples (the plan's `e_step_ids`); empty: every training input.
pub fn observer(ctx: &Arc<RunContext>, bars: bool, e_step_inputs: Vec<usize>) -> actors::log::Observer {
    let train = ctx.ids(Split::Train).len() as u64;
    let m = u64::from(ctx.config.sampling.m);
    let steps = ctx.config.train.max_steps;
    let inputs = ctx.dataset.iter().count() as u64;
    let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
    Arc::new(move |event: &Event| {
        tracing::debug!(target: "restpg::pipeline", kind = ?event.kind(), "event appended");
        if let Some(check) = crate::reward::check::RewardCheck::from_event(event) {
            // Always on stderr, bars or not: a weak reward makes the run's
            // D_t noise, and the user should know before it is trained on.
            eprintln!("{}", check.summary_line());
            if let Some(w) = check.warning() {
                eprintln!("\n{}\n{w}\n{}\n", "!".repeat(78), "!".repeat(78));
            }
        }
        if !bars {
            return;
        }
        let Ok(mut bar) = bar.lock() else { return };
        match event {
            Event::StageStarted { iteration, stage } => {
                let len = match stage {
                    Stage::Retrieve => inputs,
                    Stage::Reasoning => train,
                    Stage::EStep | Stage::Judge => match e_step_inputs.get(iteration.wrapping_sub(1) as usize) {
                        Some(&n) => n as u64 * m,
                        None => train * m,
                    },
                    Stage::Sft | Stage::MStep => steps,
                    Stage::Filter | Stage::EvalValidation | Stage::EvalTest | Stage::RewardCheck => 0,
                };
                let pb = if len > 0 { ProgressBar::new(len) } else { ProgressBar::new_spinner() };
                let style =
                    ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} ({elapsed}, ETA {eta}) {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> ");
                pb.set_style(style);
                pb.set_prefix(format!("t{iteration} {stage}"));
                if let Some(old) = bar.replace(pb) {
                    old.finish_and_clear();
                }
            }
            Event::StageFinished { .. } => {
                if let Some(pb) = bar.take() {
                    pb.finish();
                }
            }
            Event::RetrievalDone { .. }
            | Event::ReasoningGenerated { .. }
            | Event::SampleGenerated { .. }
            | Event::RewardAssigned { .. } => {
                if let Some(pb) = bar.as_ref() {
                    pb.inc(1);
                }
            }
            Event::TrainingProgress { step, loss, .. } => {
                if let Some(pb) = bar.as_ref() {
                    pb.set_position(*step);
                    pb.set_message(format!("loss {loss:.4}"));
                }
            }
            _ => {}
        }
    })
}
