//! The two ways a stage talks to a worker pool, written once: a batched
//! fan-out (retrieval, reasoning generation, the E-step, judging) and a
//! single job (a training run, an evaluation, the judge's name).
//!
//! Both go through [`Bounded`], so every stage gets the same backpressure,
//! re-issuing and timeout; both add the pool's figures to the run's
//! (re-issued batches, peak in flight).

use std::time::Duration;

use actix::prelude::*;
use events::Event;

use super::{Run, RunError};
use crate::dispatch::Bounded;
use crate::workers::WorkerError;

impl Run {
    /// Sends `items` (what is missing, in order) to a pool in batches and
    /// appends the events of each result as it arrives. `stage` names it in
    /// errors (`retrieve`, `e-step 1`, …); `pool` starts the workers, and is
    /// only called when there is something to send; the items are chunked by
    /// `Plan::batch_size` and `batch` turns a chunk into its label (its first
    /// item) and message; at most `Plan::max_in_flight` messages are
    /// outstanding; `events` turns a message and its result into the records
    /// that make it count.
    ///
    /// # Errors
    /// A batch that failed for good ([`Bounded::next`]), or the log.
    pub(super) async fn fan_out<I, M, T>(
        &mut self,
        stage: String,
        items: &[I],
        pool: impl FnOnce() -> Recipient<M>,
        batch: impl Fn(&[I]) -> (String, M),
        mut events: impl FnMut(M, T) -> Vec<Event>,
    ) -> Result<(), RunError>
    where
        M: Message<Result = Result<T, WorkerError>> + Clone + Send + 'static,
        T: Send + 'static,
    {
        if items.is_empty() {
            return Ok(());
        }
        let plan = std::sync::Arc::clone(&self.plan);
        let mut bounded = Bounded::new(stage, pool(), plan.max_in_flight, plan.max_attempts, Some(plan.batch_timeout));
        for chunk in items.chunks(plan.batch_size) {
            let (label, msg) = batch(chunk);
            bounded.push(label, msg);
        }
        while let Some(done) = bounded.next().await {
            let (msg, value) = done?;
            self.append(events(msg, value)).await?;
        }
        self.note_pool(&bounded);
        Ok(())
    }

    /// Sends one job (`label` names it in errors) and waits for its result,
    /// re-issuing it like a batch; `timeout` as `Plan::batch_timeout`, or
    /// `None` for jobs that take as long as they take (training,
    /// evaluation).
    ///
    /// # Errors
    /// As [`Run::fan_out`]; [`RunError::Mailbox`] if the pool answers
    /// nothing.
    pub(super) async fn single<M, T>(
        &mut self,
        stage: &str,
        recipient: Recipient<M>,
        (label, msg): (String, M),
        timeout: Option<Duration>,
    ) -> Result<T, RunError>
    where
        M: Message<Result = Result<T, WorkerError>> + Clone + Send + 'static,
        T: Send + 'static,
    {
        let mut bounded = Bounded::new(stage, recipient, 1, self.plan.max_attempts, timeout);
        bounded.push(label, msg);
        let value = match bounded.next().await {
            Some(r) => r?.1,
            None => {
                return Err(RunError::Mailbox { stage: stage.to_owned(), what: "the worker answered nothing".into() })
            }
        };
        self.note_pool(&bounded);
        Ok(value)
    }

    /// Adds a pool's figures to the run's.
    fn note_pool<M, T>(&mut self, pool: &Bounded<M, T>)
    where
        M: Message<Result = Result<T, WorkerError>> + Clone + Send + 'static,
        T: Send + 'static,
    {
        self.reissued += pool.reissued;
        self.peak_in_flight = self.peak_in_flight.max(pool.peak_in_flight);
    }
}
