//! REST-PG §3 step 1: the top-k profile items of every input.

use std::collections::BTreeSet;
use std::sync::Arc;

use events::{Event, Stage};

use super::{Run, RunError};
use crate::capability::Retrieve;
use crate::workers::{start_pool, RetrieveBatch};

impl Run {
    /// Retrieves the top-k profile items for every input of every split not
    /// yet retrieved.
    pub(super) async fn retrieve(&mut self) -> Result<(), RunError> {
        let plan = Arc::clone(&self.plan);
        let since = self.stage_started(0, Stage::Retrieve).await?;
        let mut seen = BTreeSet::new();
        let missing: Vec<String> = plan
            .train_ids
            .iter()
            .chain(&plan.val_ids)
            .chain(&plan.test_ids)
            .filter(|id| seen.insert(id.as_str()) && !self.state.retrieved.contains(id.as_str()))
            .cloned()
            .collect();
        let retriever = Arc::clone(&self.caps.retriever);
        let k = plan.k;
        self.fan_out(
            Stage::Retrieve.to_string(),
            &missing,
            || start_pool::<dyn Retrieve>("retriever", 1, retriever, None, None).recipient(),
            |chunk| (chunk[0].clone(), RetrieveBatch { input_ids: chunk.to_vec(), k }),
            |_, results: Vec<crate::capability::Retrieval>| {
                results
                    .into_iter()
                    .map(|r| Event::RetrievalDone {
                        input_id: r.input_id,
                        task: r.task,
                        retriever: r.retriever,
                        k: k as u32,
                        item_indices: r.item_indices,
                        scores: r.scores,
                    })
                    .collect()
            },
        )
        .await?;
        self.stage_finished(0, Stage::Retrieve, since).await
    }
}
