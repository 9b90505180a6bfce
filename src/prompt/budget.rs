//! The budget fitter: as many retrieved profile items as fit a token
//! budget, the last one trimmed; the request itself is never cut.

use std::fmt;

use crate::data::{ProfileItem, Task};

/// A prompt fitted to a token budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fitted {
    /// The rendered prompt.
    pub prompt: String,
    /// The profile items shown, in rank order (the last possibly trimmed).
    pub items: Vec<ProfileItem>,
    /// Retrieved items left out entirely.
    pub dropped: usize,
    /// Whether the last shown item was trimmed.
    pub trimmed: bool,
    /// Tokens of `prompt` by the counter used.
    pub tokens: usize,
    /// The prompt without any profile item already exceeds the budget; it is
    /// returned whole (the request is never cut).
    pub over_budget: bool,
}

impl fmt::Display for Fitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prompt)
    }
}

/// Fewest words of a trimmed item's long field worth showing; below this the
/// item is dropped instead.
pub const MIN_TRIMMED_WORDS: usize = 8;

/// Fits retrieved profile items into `max_tokens` (see the module docs):
/// items are added in rank order while the whole prompt fits; the first that
/// does not fit has its long field ([`Task::long_field`]) cut to the most
/// words that fit (binary search; at least [`MIN_TRIMMED_WORDS`], else it is
/// dropped), and all lower-ranked items are dropped. `render` builds the
/// prompt around a list of items; `count_tokens` measures it.
pub fn fit_profile(
    task: Task,
    retrieved: &[&ProfileItem],
    max_tokens: usize,
    count_tokens: &dyn Fn(&str) -> usize,
    render: &dyn Fn(&[&ProfileItem]) -> String,
) -> Fitted {
    let full = render(retrieved);
    let n_full = count_tokens(&full);
    if n_full <= max_tokens {
        return Fitted {
            prompt: full,
            items: retrieved.iter().map(|p| (*p).clone()).collect(),
            dropped: 0,
            trimmed: false,
            tokens: n_full,
            over_budget: false,
        };
    }
    let base = render(&[]);
    let n_base = count_tokens(&base);
    if n_base > max_tokens {
        return Fitted {
            prompt: base,
            items: Vec::new(),
            dropped: retrieved.len(),
            trimmed: false,
            tokens: n_base,
            over_budget: true,
        };
    }
    let mut kept: Vec<ProfileItem> = Vec::new();
    let mut trimmed = false;
    let fits = |items: &[ProfileItem]| -> Option<(String, usize)> {
        let refs: Vec<&ProfileItem> = items.iter().collect();
        let p = render(&refs);
        let n = count_tokens(&p);
        (n <= max_tokens).then_some((p, n))
    };
    let mut best = (base, n_base);
    for item in retrieved {
        kept.push((*item).clone());
        if let Some(ok) = fits(&kept) {
            best = ok;
            continue;
        }
        kept.pop();
        // Trim the long field to the most words that fit.
        let field = task.long_field();
        let words: Vec<&str> = item.field(field).split_whitespace().collect();
        let (mut lo, mut hi) = (0usize, words.len());
        let mut found: Option<(ProfileItem, String, usize)> = None;
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let mut cut = (*item).clone();
            cut.fields.insert(field.to_string(), format!("{} …", words[..mid].join(" ")));
            kept.push(cut.clone());
            let r = fits(&kept);
            kept.pop();
            match r {
                Some((p, n)) => {
                    found = Some((cut, p, n));
                    lo = mid;
                }
                None => hi = mid - 1,
            }
        }
        if let Some((cut, p, n)) = found.filter(|_| lo >= MIN_TRIMMED_WORDS) {
            kept.push(cut);
            best = (p, n);
            trimmed = true;
        }
        break;
    }
    let dropped = retrieved.len() - kept.len();
    Fitted { prompt: best.0, items: kept, dropped, trimmed, tokens: best.1, over_budget: false }
}
