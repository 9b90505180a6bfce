//! [`RunContext`]: what every capability of a run reads, shared read-only;
//! and [`ContextRetriever`], retrieval from its precomputed results.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use actors::capability::{CapabilityError, PromptKind, Retrieval, Retrieve, Targets};
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
        let dataset =
            Dataset::load(&config.data).with_context(|| format!("loading the data set {}", config.data.display()))?;
        let mut index = HashMap::new();
        for split in [Split::Train, Split::Validation, Split::Test] {
            for (pos, ex) in dataset.split(split).iter().enumerate() {
                index.insert(ex.id.clone(), (split, pos));
            }
        }
        let k = config.retrieval.k;
        let mut retriever = build_retriever(&config)?;
        let retriever_name = retriever.name();
        let mut retrievals = BTreeMap::new();
        for (_, ex) in dataset.iter() {
            let ranked =
                retriever.retrieve(ex, k).with_context(|| format!("retrieving profile items for input {}", ex.id))?;
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

    /// Where a checkpoint lies: its logged path (`blobs/<hash>`, relative to
    /// the run directory, so a run directory can be moved or read from
    /// anywhere) resolved against the run directory; an absolute path is
    /// kept.
    pub fn checkpoint_path(&self, checkpoint: &actors::capability::CheckpointRef) -> PathBuf {
        self.run_dir.join(&checkpoint.path)
    }

    /// The example with this input id.
    ///
    /// # Errors
    /// A fatal [`CapabilityError`] naming the unknown id.
    pub fn example(&self, input_id: &str) -> Result<&Example, CapabilityError> {
        let (split, pos) = self.index.get(input_id).ok_or_else(|| {
            CapabilityError::fatal(format!("unknown input id {input_id:?} (not in {})", self.config.data.display()))
        })?;
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
    /// An input whose request alone is over the budget is not an error: the
    /// request's tail is trimmed (for the reasoning generator's prompt, then
    /// y's tail) until it fits, with a warning naming the input; the same
    /// rule in training, the E-step and evaluation.
    ///
    /// # Errors
    /// Unknown input id, a tokenizer failure, or a template that does not fit
    /// the budget even with an empty request (fatal, naming the id).
    pub fn prompt_ids(
        &self,
        tokenizer: &ChatTokenizer,
        input_id: &str,
        kind: PromptKind,
    ) -> Result<(String, Vec<u32>), CapabilityError> {
        let ex = self.example(input_id)?;
        let ranked = self.retrievals.get(input_id).map(Vec::as_slice).unwrap_or(&[]);
        fit_prompt(&self.config, &self.templates, tokenizer, ex, ranked, kind)
    }

    /// The text a training item teaches the model to write after its
    /// prompt: y (SFT), the reasoning, the template's separator and y
    /// (`D_reasoning`), or a kept sample's raw output (the M-step).
    ///
    /// # Errors
    /// A fatal error for an unknown input id.
    pub fn target_text(&self, item: &actors::capability::TrainItem) -> Result<String, CapabilityError> {
        use actors::capability::TrainTarget;
        Ok(match &item.target {
            TrainTarget::Reference => self.example(&item.input_id)?.output.clone(),
            TrainTarget::ReasoningThenReference { reasoning } => {
                self.templates.reasoning_target(reasoning, &self.example(&item.input_id)?.output)
            }
            TrainTarget::Generated { raw } => raw.clone(),
        })
    }
}

/// The retriever a configuration names (`retrieval.retriever`: BM25, or
/// dense with `retrieval.encoder` or the set-up's MiniLM).
///
/// # Errors
/// A dense encoder that does not load (or is not set up).
pub fn build_retriever(config: &RunConfig) -> anyhow::Result<Box<dyn Retriever>> {
    Ok(match config.retrieval.retriever.as_str() {
        "dense" => {
            let dir = match &config.retrieval.encoder {
                Some(d) => d.clone(),
                None => crate::paths::require(crate::paths::minilm_dir())?,
            };
            Box::new(retrieve::DenseRetriever::load(&dir, retrieve::DenseOptions::default())?)
        }
        _ => Box::new(retrieve::Bm25::new(retrieve::Bm25Params::default())),
    })
}

/// The chat-formatted prompt of template `kind` for example `ex` with its
/// ranked profile items (`ranked`: profile indices and scores, best first),
/// and its token ids, fitted to the configuration's budget as
/// [`RunContext::prompt_ids`] describes (the one prompt rule of training,
/// the E-step, evaluation and `restpg write`).
///
/// # Errors
/// A tokenizer failure, or a template that does not fit the budget even
/// with an empty request (fatal, naming the example id).
pub fn fit_prompt(
    config: &RunConfig,
    templates: &Templates,
    tokenizer: &ChatTokenizer,
    ex: &Example,
    ranked: &[(usize, f32)],
    kind: PromptKind,
) -> Result<(String, Vec<u32>), CapabilityError> {
    let input_id = ex.id.as_str();
    let items = retrieve::retrieved_items(ex, ranked);
    // The policy's prompts must fit the training input limit; the
    // generator's prompt also shows y, so it gets y's budget on top.
    let budget = match kind {
        PromptKind::ReasoningGeneration => config.train.max_input_tokens + config.train.max_output_tokens,
        _ => config.train.max_input_tokens,
    };
    // Measure the chat-formatted prompt, which is what the model sees.
    let count = |user: &str| tokenizer.chat(None, user).map(|c| c.ids.len()).unwrap_or(usize::MAX);
    let mut fitted = templates.fit(kind, ex, &items, budget, &count);
    if fitted.over_budget {
        // The one policy for every stage: an input whose fixed part alone
        // is over the budget has its request's tail trimmed (then, for
        // the generator's prompt, y's tail), with a logged note.
        let (trimmed, note) = trim_to_budget(templates, kind, ex, budget, &count);
        if let Some(f) = trimmed {
            tracing::warn!(input = input_id, "{note}");
            fitted = f;
        }
    }
    if fitted.over_budget {
        return Err(CapabilityError::fatal(format!(
            "input {input_id}: the prompt template alone has {} tokens, over the budget of {budget} even with an empty request: raise train.max_input_tokens or shorten the template",
            fitted.tokens
        )));
    }
    let chat = tokenizer
        .chat(None, &fitted.prompt)
        .map_err(|e| CapabilityError::fatal(format!("tokenizing the prompt of {input_id}: {e:#}")))?;
    Ok((chat.text, chat.ids))
}

/// Retrieval from the run context's precomputed results.
pub struct ContextRetriever {
    /// The run's shared context.
    pub ctx: Arc<RunContext>,
}

impl Retrieve for ContextRetriever {
    fn retrieve(&mut self, input_ids: &[String], k: usize) -> Result<Vec<Retrieval>, CapabilityError> {
        input_ids.iter().map(|id| self.ctx.retrieval(id, k)).collect()
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

/// The longest prefixes (in characters) of the request, then of y for the
/// reasoning generator, with which prompt `kind` fits `budget` without any
/// profile item; `None` when even empty ones do not fit. The note says what
/// was cut.
fn trim_to_budget(
    templates: &crate::prompt::Templates,
    kind: PromptKind,
    ex: &Example,
    budget: usize,
    count: &dyn Fn(&str) -> usize,
) -> (Option<crate::prompt::Fitted>, String) {
    let cut = |text: &str, chars: usize| -> String {
        let mut t: String = text.chars().take(chars).collect();
        if chars < text.chars().count() {
            t.push_str(" […]");
        }
        t
    };
    let fits = |e: &Example| {
        let f = templates.fit(kind, e, &[], budget, count);
        (!f.over_budget).then_some(f)
    };
    // Largest n in [0, len] with fits(prefix n), by bisection (fit is
    // monotone in n), with the prompt fitted at that n.
    let longest = |len: usize, make: &dyn Fn(usize) -> Example| -> Option<(usize, crate::prompt::Fitted)> {
        let mut best = (0, fits(&make(0))?);
        let mut hi = len;
        while best.0 < hi {
            let mid = (best.0 + hi).div_ceil(2);
            match fits(&make(mid)) {
                Some(f) => best = (mid, f),
                None => hi = mid - 1,
            }
        }
        Some(best)
    };
    let input_len = ex.input.chars().count();
    let with_input = |n: usize| Example { input: cut(&ex.input, n), ..ex.clone() };
    if let Some((n, fitted)) = longest(input_len, &with_input) {
        let note = format!(
            "the request is over the input budget of {budget} tokens: kept its first {n} of {input_len} characters"
        );
        return (Some(fitted), note);
    }
    if kind == PromptKind::ReasoningGeneration {
        let output_len = ex.output.chars().count();
        let with_output = |n: usize| Example { input: String::new(), output: cut(&ex.output, n), ..ex.clone() };
        if let Some((n, fitted)) = longest(output_len, &with_output) {
            let note = format!(
                "the request and y are over the budget of {budget} tokens: dropped the request and kept y's first {n} of {output_len} characters"
            );
            return (Some(fitted), note);
        }
    }
    (None, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ProfileItem, Task};
    use crate::prompt::PromptKind as Kind;

    fn example(input: String, output: String) -> Example {
        let item = ProfileItem {
            id: "p0".into(),
            fields: [("subject".to_string(), "s".to_string()), ("text".to_string(), "t".to_string())].into(),
        };
        Example {
            id: "e1".into(),
            task: Task::EmailCompletion,
            user_id: "u".into(),
            input,
            output,
            profile: vec![item],
        }
    }

    #[test]
    fn an_over_long_request_is_trimmed_to_the_budget_not_fatal() {
        // Given a request of 20,000 characters and a budget counted in characters
        let templates = crate::prompt::Templates::builtin();
        let count = |s: &str| s.chars().count();
        let ex = example("word ".repeat(4000), "reply".into());
        let budget = 2000;
        assert!(templates.fit(Kind::Plain, &ex, &[], budget, &count).over_budget);
        // when it is fitted, then the request keeps the longest prefix that fits
        let (fitted, note) = trim_to_budget(&templates, Kind::Plain, &ex, budget, &count);
        let fitted = fitted.expect("fits after trimming");
        assert!(!fitted.over_budget && fitted.tokens <= budget && fitted.tokens > budget - 10, "{}", fitted.tokens);
        assert!(fitted.prompt.contains(" […]") && note.contains("of 20000 characters"), "{note}");
        // and the generator's prompt, which also shows y, trims y once the request is gone
        let ex = example("short".into(), "y ".repeat(5000));
        let (fitted, note) = trim_to_budget(&templates, Kind::ReasoningGeneration, &ex, budget, &count);
        assert!(fitted.expect("fits").tokens <= budget);
        assert!(note.contains("kept y's first"), "{note}");
        // and a budget the template alone exceeds cannot be met
        assert!(trim_to_budget(&templates, Kind::Plain, &ex, 10, &count).0.is_none());
    }
}
