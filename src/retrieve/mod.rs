//! # Retrieval: choosing the k profile items a prompt shows
//!
//! REST-PG (Salemi et al. 2025, §3) and LongLaMP (Kumar et al. 2024, §4)
//! condition the model on the `k` (default 5) items of the user's profile
//! most relevant to the input. A [`Retriever`] ranks the items of one
//! example's profile and returns `(profile index, score)` pairs, best first.
//!
//! Two retrievers:
//!
//! * [`Bm25`]: Okapi BM25 with the exact formula and defaults of the
//!   `rank_bm25` package's `BM25Okapi` (k1 = 1.5, b = 0.75, ε = 0.25, idf
//!   `ln(N − n + 0.5) − ln(n + 0.5)` with negative idfs replaced by
//!   ε·mean idf), which LongLaMP's baseline calls on whitespace-split
//!   text (`x.split()`), built per example over that example's profile.
//! * [`DenseRetriever`]: a BERT encoder on tch with mean pooling and a dot
//!   product, which covers both all-MiniLM-L6-v2 (mean pooling + L2
//!   normalisation, the set-up's model) and Contriever (mean pooling, raw dot
//!   product, LongLaMP's and REST-PG's dense retriever) from a directory of
//!   `model.safetensors` + `tokenizer.json` + `config.json`. Profile item
//!   embeddings are cached for the life of the retriever, keyed by a blake3
//!   digest of the document text, so a run encodes each profile item once.
//!
//! What text is compared is LongLaMP's choice per task ([`query_text`],
//! [`document_text`]): reviews use the whole input and
//! `overall summary description reviewText`; abstracts the part of the input
//! after `items:` and `title abstract`; topic writing the whole input and
//! `summary content`; e-mails the input after its first `:` and the item's
//! `text`.
//!
//! Ties are broken by profile order (the lower index first), so rankings are
//! deterministic; LongLaMP's `np.argsort(scores)[::-1]` leaves tie order to
//! numpy's sort.

use crate::data::{Example, ProfileItem, Task};

mod bm25;
mod dense;

pub use bm25::{Bm25, Bm25Params};
pub use dense::{BertEncoder, DenseOptions, DenseRetriever};

/// Default number of retrieved profile items (REST-PG Appendix B: k = 5).
pub const DEFAULT_K: usize = 5;

/// Ranks the profile items of an example.
pub trait Retriever {
    /// The top `k` items of `example.profile` for `example`'s query, as
    /// `(index into example.profile, score)`, best first; fewer when the
    /// profile is shorter. Scores are the retriever's own (BM25 score, dot
    /// product), higher is better.
    ///
    /// # Errors
    /// Encoder failures (dense retrieval).
    fn retrieve(&mut self, example: &Example, k: usize) -> anyhow::Result<Vec<(usize, f32)>>;
    /// A short name for logs and events, e.g. `bm25(k1=1.5,b=0.75)`.
    fn name(&self) -> String;
}

/// The query LongLaMP builds from an example's input (see the module docs).
/// When the marker a task looks for (`items:` for abstracts, `:` for
/// e-mails) is absent, the whole input is the query (LongLaMP's code would
/// fail there).
pub fn query_text(example: &Example) -> String {
    let input = example.input.as_str();
    let after = |marker: &str| input.find(marker).map(|i| input[i + marker.len()..].trim().to_string());
    match example.task {
        Task::ReviewWriting | Task::TopicWriting => input.to_string(),
        Task::AbstractGeneration => after("items:").unwrap_or_else(|| input.to_string()),
        Task::EmailCompletion => after(":").unwrap_or_else(|| input.to_string()),
    }
}

/// The document text LongLaMP builds from a profile item of `task` (fields
/// joined by single spaces; see the module docs).
pub fn document_text(task: Task, item: &ProfileItem) -> String {
    match task {
        Task::EmailCompletion => item.field("text").to_string(),
        Task::AbstractGeneration => format!("{} {}", item.field("title"), item.field("abstract")),
        Task::ReviewWriting => format!(
            "{} {} {} {}",
            item.field("overall"),
            item.field("summary"),
            item.field("description"),
            item.field("reviewText")
        ),
        Task::TopicWriting => format!("{} {}", item.field("summary"), item.field("content")),
    }
}

/// Sorts `(index, score)` best first (ties: lower index first) and keeps `k`.
pub fn top_k(scores: impl IntoIterator<Item = (usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    let mut v: Vec<(usize, f32)> = scores.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(k);
    v
}

/// The retrieved items themselves, in rank order.
pub fn retrieved_items<'a>(example: &'a Example, ranked: &[(usize, f32)]) -> Vec<&'a ProfileItem> {
    ranked.iter().filter_map(|(i, _)| example.profile.get(*i)).collect()
}
