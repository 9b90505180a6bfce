//! Bounded, retrying dispatch of batches to a worker pool.
//!
//! At most `max_in_flight` batches are outstanding at once (backpressure:
//! the coordinator never queues a whole E-step in a mailbox). A batch whose
//! worker fails retryably, panics, or dies (the reply channel closes) goes
//! back to the front of the queue and is delivered again, to whichever
//! worker of the pool is free, up to `max_attempts` deliveries. A batch
//! without an answer after `timeout` (a libtorch deadlock, a stuck request)
//! counts as such a failure, so a hung worker cannot hang the run.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use actix::prelude::*;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::coordinator::RunError;
use crate::workers::WorkerError;

type Pending<M> = Pin<Box<dyn Future<Output = (Job<M>, Result<<M as Message>::Result, MailboxError>)>>>;

struct Job<M> {
    label: String,
    msg: M,
    attempts: u32,
}

/// A queue of batches for one pool. See the module documentation.
pub(crate) struct Bounded<M, T>
where
    M: Message<Result = Result<T, WorkerError>> + Clone + Send + 'static,
    T: Send + 'static,
{
    stage: String,
    recipient: Recipient<M>,
    queue: VecDeque<Job<M>>,
    in_flight: FuturesUnordered<Pending<M>>,
    max_in_flight: usize,
    max_attempts: u32,
    timeout: Option<std::time::Duration>,
    /// Most batches ever outstanding at once (checked by the tests).
    pub(crate) peak_in_flight: usize,
    /// Deliveries that failed and were re-issued.
    pub(crate) reissued: usize,
}

impl<M, T> Bounded<M, T>
where
    M: Message<Result = Result<T, WorkerError>> + Clone + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(
        stage: impl Into<String>,
        recipient: Recipient<M>,
        max_in_flight: usize,
        max_attempts: u32,
        timeout: Option<std::time::Duration>,
    ) -> Self {
        Bounded {
            timeout,
            stage: stage.into(),
            recipient,
            queue: VecDeque::new(),
            in_flight: FuturesUnordered::new(),
            max_in_flight: max_in_flight.max(1),
            max_attempts: max_attempts.max(1),
            peak_in_flight: 0,
            reissued: 0,
        }
    }

    /// Queues a batch; `label` names it in errors (e.g. its first sample).
    pub(crate) fn push(&mut self, label: String, msg: M) {
        self.queue.push_back(Job { label, msg, attempts: 0 });
    }

    fn send(&mut self, mut job: Job<M>) {
        job.attempts += 1;
        let request = match self.timeout {
            Some(t) => self.recipient.send(job.msg.clone()).timeout(t),
            None => self.recipient.send(job.msg.clone()),
        };
        self.in_flight.push(Box::pin(async move {
            let result = request.await;
            (job, result)
        }));
        self.peak_in_flight = self.peak_in_flight.max(self.in_flight.len());
    }

    /// The next finished batch with its result, `None` when every batch is
    /// done. Retryable failures are re-issued here and never returned.
    ///
    /// # Errors
    /// [`RunError::Worker`] for a fatal failure, [`RunError::RetriesExhausted`]
    /// once a batch failed `max_attempts` times.
    pub(crate) async fn next(&mut self) -> Option<Result<(M, T), RunError>> {
        loop {
            while self.in_flight.len() < self.max_in_flight {
                match self.queue.pop_front() {
                    Some(job) => self.send(job),
                    None => break,
                }
            }
            let (job, result) = self.in_flight.next().await?;
            let error = match result {
                Ok(Ok(value)) => return Some(Ok((job.msg, value))),
                Ok(Err(e)) => e,
                Err(MailboxError::Timeout) => WorkerError {
                    role: "pool",
                    what: format!(
                        "no answer within {} s: the worker is presumed hung",
                        self.timeout.map_or(0.0, |t| t.as_secs_f64())
                    ),
                    retryable: true,
                    panicked: false,
                },
                Err(mailbox) => WorkerError {
                    role: "pool",
                    what: format!("worker thread lost the batch ({mailbox})"),
                    retryable: true,
                    panicked: false,
                },
            };
            if !error.retryable {
                return Some(Err(RunError::Worker { stage: self.stage.clone(), batch: job.label, source: error }));
            }
            if job.attempts >= self.max_attempts {
                return Some(Err(RunError::RetriesExhausted {
                    stage: self.stage.clone(),
                    batch: job.label,
                    attempts: job.attempts,
                    last: error,
                }));
            }
            tracing::warn!(stage = %self.stage, batch = %job.label, attempt = job.attempts, error = %error, "re-issuing batch");
            self.reissued += 1;
            self.queue.push_front(job);
        }
    }
}
