//! [`RunContext`]: what every capability of a run reads, shared read-only.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use actors::capability::{CapabilityError, PromptKind, Retrieval, Targets};
use anyhow::Context as _;

use crate::config::RunConfig;
use crate::data::{Dataset, Example, Split};
use crate::lm::ChatTokenizer;
use crate::prompt::Templates;
use crate::retrieve::{self, Retriever};

/// The loaded data set, templates and retrieval results of one run.
///
/// Plain data, built once on the main thread and shared by every worker
/// behind an `Arc`; no tensors live here.
pub struct RunContext {
    /// The resolved run configuration.
    pub config: RunConfig,
    /// The data set (all splits).
    pub dataset: Dataset,
    /// The prompt templates.
    pub templates: Templates,
    /// Top-k profile indices and scores per input id, best first.
    pub retrievals: BTreeMap<String, Vec<(usize, f32)>>,
    /// The retriever's name as logged.
    pub retriever_name: String,
    /// The run directory.
    pub run_dir: PathBuf,
    index: HashMap<String, (Split, usize)>,
}

impl RunContext {
    /// Loads the data set named by `config.data`, the built-in templates,
    /// and retrieves the top-k profile items of every example (BM25 or
    /// dense, as configured). Retrieval is deterministic, so a resumed run
    /// recomputes exactly what the log holds.
    ///
    /// # Errors
    /// A data set that does not load, or a failing encoder.
    pub fn build(config: RunConfig, run_dir: &Path) -> anyhow::Result<Self> {
        let dataset = Dataset::load(&config.data)
            .with_context(|| format!("loading the data set {}", config.data.display()))?;
        let mut index = HashMap::new();
        for split in [Split::Train, Split::Val, Split::Test] {
            for (pos, ex) in dataset.split(split).iter().enumerate() {
                index.insert(ex.id.clone(), (split, pos));
            }
        }
        let k = config.retrieval.k;
        let mut retriever: Box<dyn Retriever> = match config.retrieval.retriever.as_str() {
            "dense" => {
                let dir = match &config.retrieval.encoder {
                    Some(d) => d.clone(),
                    None => crate::paths::require(crate::paths::minilm_dir())?,
                };
                Box::new(retrieve::DenseRetriever::load(&dir, retrieve::DenseOptions::default())?)
            }
            _ => Box::new(retrieve::Bm25::new(retrieve::Bm25Params::default())),
        };
        let retriever_name = retriever.name();
        let mut retrievals = BTreeMap::new();
        for (_, ex) in dataset.iter() {
            let ranked = retriever
                .retrieve(ex, k)
                .with_context(|| format!("retrieving profile items for input {}", ex.id))?;
            retrievals.insert(ex.id.clone(), ranked);
        }
        Ok(Self {
            config,
            dataset,
            templates: Templates::builtin(),
            retrievals,
            retriever_name,
            run_dir: run_dir.to_owned(),
            index,
        })
    }

    /// The example with this input id.
    ///
    /// # Errors
    /// A fatal [`CapabilityError`] naming the unknown id.
    pub fn example(&self, input_id: &str) -> Result<&Example, CapabilityError> {
        let (split, pos) = self
            .index
            .get(input_id)
            .ok_or_else(|| CapabilityError::fatal(format!("unknown input id {input_id:?} (not in {})", self.config.data.display())))?;
        Ok(&self.dataset.split(*split)[*pos])
    }

    /// Input ids of a split, in data set order.
    pub fn ids(&self, split: Split) -> Vec<String> {
        self.dataset.split(split).iter().map(|e| e.id.clone()).collect()
    }

    /// The retrieval result of an input, as the log records it.
    ///
    /// # Errors
    /// A fatal error for an unknown input id.
    pub fn retrieval(&self, input_id: &str, k: usize) -> Result<Retrieval, CapabilityError> {
        let ex = self.example(input_id)?;
        let ranked = self
            .retrievals
            .get(input_id)
            .ok_or_else(|| CapabilityError::fatal(format!("no retrieval for input {input_id:?}")))?;
        let ranked = &ranked[..ranked.len().min(k)];
        Ok(Retrieval {
            input_id: input_id.to_owned(),
            task: ex.task.name().to_owned(),
            retriever: self.retriever_name.clone(),
            item_indices: ranked.iter().map(|(i, _)| *i as u32).collect(),
            scores: ranked.iter().map(|(_, s)| *s).collect(),
        })
    }

    /// The chat-formatted prompt for `input_id` with template `kind` and its
    /// token ids. Retrieved profile items are trimmed (least relevant first,
    /// [`crate::prompt::fit_profile`]) until the prompt fits
    /// `train.max_input_tokens` (plus `train.max_output_tokens` for the
    /// reasoning generator, whose prompt also shows y). The user's own input
    /// is never cut.
    ///
    /// # Errors
    /// Unknown input id, a tokenizer failure, or an input that does not fit
    /// even with no profile item (fatal, naming the id).
    pub fn prompt_ids(
        &self,
        tokenizer: &ChatTokenizer,
        input_id: &str,
        kind: PromptKind,
    ) -> Result<(String, Vec<u32>), CapabilityError> {
        let ex = self.example(input_id)?;
        let ranked = self.retrievals.get(input_id).map(Vec::as_slice).unwrap_or(&[]);
        let items = retrieve::retrieved_items(ex, ranked);
        // The policy's prompts must fit the training input limit; the
        // generator's prompt also shows y, so it gets y's budget on top.
        let budget = match kind {
            PromptKind::ReasoningGeneration => self.config.train.max_input_tokens + self.config.train.max_output_tokens,
            _ => self.config.train.max_input_tokens,
        };
        let kind = match kind {
            PromptKind::Plain => crate::prompt::PromptKind::Plain,
            PromptKind::Reasoning => crate::prompt::PromptKind::ReasoningInput,
            PromptKind::ReasoningGeneration => crate::prompt::PromptKind::ReasoningGeneration,
        };
        // Measure the chat-formatted prompt, which is what the model sees.
        let count = |user: &str| tokenizer.chat(None, user).map(|c| c.ids.len()).unwrap_or(usize::MAX);
        let fitted = self.templates.fit(kind, ex, &items, budget, &count);
        if fitted.over_budget {
            return Err(CapabilityError::fatal(format!(
                "input {input_id}: the prompt has {} tokens without any profile item, over train.max_input_tokens = {budget}",
                fitted.tokens
            )));
        }
        let chat = tokenizer
            .chat(None, &fitted.prompt)
            .map_err(|e| CapabilityError::fatal(format!("tokenizing the prompt of {input_id}: {e:#}")))?;
        Ok((chat.text, chat.ids))
    }
}

impl Targets for RunContext {
    fn join(&self, reasoning: Option<&str>, response: &str) -> String {
        match reasoning {
            None => response.to_owned(),
            Some(r) => self.templates.reasoning_target(r, response),
        }
    }
}
