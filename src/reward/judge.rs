//! The paper's LLM judge (REST-PG, Salemi et al. 2025, §3 and Appendix A):
//! the judge prompt — input, expected output, generated output and the
//! criteria for scores 0–10 — goes through the judge model once, with no
//! sampling, and the probability of each score at the answer position is
//! read off the next-token distribution. The paper's reward is the score with
//! the highest probability ÷ 10 ([`ScoreRule::Argmax`]); G-Eval's
//! probability-weighted mean ÷ 10 is the option [`ScoreRule::Expected`]. The
//! whole 11-value distribution is returned for the event log.
//!
//! **Multi-token scores.** Each score `s ∈ 0..=10` is encoded on its own
//! (`encode("7")`, `encode("10")`); for SmolLM2's tokenizer, which splits
//! digits, "10" is the two tokens "1","0". The score sequences form a trie.
//! The probability of a sequence is the product of its next-token
//! probabilities (P("10") = P("1") · P("0" | "1")). Every proper prefix of a
//! score is a trie node whose next-token distribution is needed. When the
//! nodes form one chain (each a prefix of the longest, as `[]`, `["1"]` for
//! SmolLM2) one forward over the prompt followed by the longest node gives
//! them all: the prompt's last position holds P(first token), the position
//! of "1" holds P(· | "1") ([`ScoreModel::tail_logprobs`]). A trie that
//! branches (say "10" = "1","0" and "7" = "7","_") needs one forward per
//! branch, each over the prompt followed by a node that no other node
//! extends. [`JudgeConfig::pass_per_prefix`] keeps the judge as it was before
//! (one forward per node), for before/after measurements. A score
//! that is a prefix of another is only a *final* answer when the answer does
//! not continue into the longer one: P("1" final) = P("1") · (1 − P("0" | "1")).
//! The 11 final probabilities are renormalised to sum to 1 (mass on
//! non-score tokens is dropped). A judge whose tokenizer cannot encode every
//! score as a round-tripping token sequence is refused at construction.
//!
//! Only the response part of the generation is judged (see
//! [`crate::reward::nonempty`]); an empty response scores 0 without a
//! model call. Batches are cut into chunks of `batch_size` prompts; results
//! do not depend on chunking beyond the model's own numerical batch
//! invariance (tested on the real SmolLM2).

use super::{nonempty, Reward, RewardInput, RewardOutput};
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;

/// What the judge needs from a language model: the tokenizer and one forward
/// pass returning next-token log-probabilities at the last positions.
pub trait ScoreModel {
    /// Log-softmax over the vocabulary (natural log) at the last `tails[r]`
    /// positions of each `seqs[r]`: `[B][tails[r]][V]`, in position order, so
    /// entry `j` is the distribution of the token after
    /// `seqs[r][..len - tails[r] + 1 + j]` and the last entry the one after
    /// the whole sequence. All rows in one batch (the judge chunks them).
    ///
    /// # Errors
    /// A tail of 0 or longer than its sequence; model failures.
    fn tail_logprobs(&mut self, seqs: &[Vec<u32>], tails: &[usize]) -> Result<Vec<Vec<Vec<f32>>>>;
    /// Token ids of `text` (no special tokens added).
    ///
    /// # Errors
    /// Tokenizer failures.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Text of `ids`.
    ///
    /// # Errors
    /// Tokenizer failures.
    fn decode(&self, ids: &[u32]) -> Result<String>;
    /// The ids of the model's chat prompt for one user turn, ending where
    /// the assistant's answer starts (user text encoded as plain text).
    ///
    /// # Errors
    /// Template or tokenizer failures.
    fn chat_prompt_ids(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>>;
}

/// The tch language model as a judge (owned): the same as the borrowed
/// implementation below, which it calls.
impl ScoreModel for crate::lm::LanguageModel {
    fn tail_logprobs(&mut self, seqs: &[Vec<u32>], tails: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
        ScoreModel::tail_logprobs(&mut &*self, seqs, tails)
    }
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        ScoreModel::encode(&self, text)
    }
    fn decode(&self, ids: &[u32]) -> Result<String> {
        ScoreModel::decode(&self, ids)
    }
    fn chat_prompt_ids(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>> {
        ScoreModel::chat_prompt_ids(&self, system, user)
    }
}

/// The tch language model as a judge (borrowed, e.g. the policy judging
/// itself in a test or the evaluation sharing one model).
/// Rows are grouped by shared prefix, each prefix run once
/// ([`crate::lm::score`]).
impl ScoreModel for &crate::lm::LanguageModel {
    fn tail_logprobs(&mut self, seqs: &[Vec<u32>], tails: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
        crate::lm::LanguageModel::tail_logprobs(self, seqs, tails)
    }
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer().encode(text)
    }
    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer().decode(ids)
    }
    fn chat_prompt_ids(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer().chat(system, user)?.ids)
    }
}

/// The tch language model as a judge under explicit
/// [`crate::lm::ScoreOptions`] (prefix sharing off, to measure what it buys
/// or compare with the judge before it).
#[derive(Debug, Clone, Copy)]
pub struct ScoreWith<'a> {
    /// The model.
    pub model: &'a crate::lm::LanguageModel,
    /// How its forwards run.
    pub options: crate::lm::ScoreOptions,
}

impl ScoreModel for ScoreWith<'_> {
    fn tail_logprobs(&mut self, seqs: &[Vec<u32>], tails: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
        self.model.tail_logprobs_with(seqs, tails, self.options)
    }
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        ScoreModel::encode(&self.model, text)
    }
    fn decode(&self, ids: &[u32]) -> Result<String> {
        ScoreModel::decode(&self.model, ids)
    }
    fn chat_prompt_ids(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>> {
        ScoreModel::chat_prompt_ids(&self.model, system, user)
    }
}

/// How the score distribution becomes a reward: the shared vocabulary's
/// rule (`argmax`, the paper's, or `expected`, G-Eval's).
pub use events::ScoreRule;

/// The judge's prompt text from (input, expected output, response).
pub type JudgeTemplate = Box<dyn Fn(&str, &str, &str) -> String + Send>;

/// The judge template of the prompt module's [`crate::prompt::Templates`]
/// (prompt 4, `prompts/judge.txt`) as a [`JudgeTemplate`].
pub fn templates_judge(t: crate::prompt::Templates) -> JudgeTemplate {
    Box::new(move |input, expected, generated| t.judge(input, expected, generated))
}

/// Judge settings.
pub struct JudgeConfig {
    /// Argmax (paper) or expected value (G-Eval).
    pub rule: ScoreRule,
    /// Prompts per forward pass.
    pub batch_size: usize,
    /// Builds the user turn of the judge prompt.
    pub template: JudgeTemplate,
    /// Optional system turn.
    pub system: Option<String>,
    /// Text appended after the chat prompt's assistant start, before the
    /// score (e.g. "Score: "); empty by default.
    pub answer_prefix: String,
    /// One forward per score prefix (trie node), each reading one position:
    /// the judge before single-pass scoring, for before/after measurements
    /// (`restpg bench judge --pass-per-prefix`) and the equivalence test.
    /// Off (the default): one forward per chain of prefixes.
    pub pass_per_prefix: bool,
}

impl std::fmt::Debug for JudgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgeConfig")
            .field("rule", &self.rule)
            .field("batch_size", &self.batch_size)
            .field("answer_prefix", &self.answer_prefix)
            .field("pass_per_prefix", &self.pass_per_prefix)
            .finish_non_exhaustive()
    }
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            rule: ScoreRule::Argmax,
            batch_size: 8,
            template: templates_judge(crate::prompt::Templates::builtin()),
            system: None,
            answer_prefix: String::new(),
            pass_per_prefix: false,
        }
    }
}

/// The score token sequences as a trie, derived once per tokenizer.
#[derive(Clone, Debug)]
struct ScoreTrie {
    /// Token sequence of each score 0..=10.
    seqs: Vec<Vec<u32>>,
    /// Prefixes whose next-token distribution is needed (root = empty),
    /// each with the distinct next tokens that continue to some score.
    nodes: BTreeMap<Vec<u32>, Vec<u32>>,
    /// The nodes that no other node extends: one forward over the prompt
    /// followed by such a node gives the distributions of all its prefixes.
    chains: Vec<Vec<u32>>,
}

/// One forward of the judge per prompt: the tokens appended to the prompt
/// and how many last positions are read. Position `j` of the `tail` read
/// gives the distribution after node `suffix[..suffix.len() + 1 - tail + j]`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pass {
    suffix: Vec<u32>,
    tail: usize,
}

impl ScoreTrie {
    fn new<M: ScoreModel + ?Sized>(model: &M) -> Result<Self> {
        let mut seqs = Vec::with_capacity(11);
        for s in 0..=10u32 {
            let text = s.to_string();
            let ids = model.encode(&text).with_context(|| format!("encoding judge score {text:?}"))?;
            ensure!(
                !ids.is_empty(),
                "the judge's tokenizer has no tokens for score {text:?}: it cannot be used as a judge"
            );
            let back = model.decode(&ids).with_context(|| format!("decoding judge score {text:?}"))?;
            ensure!(
                back.trim() == text,
                "the judge's tokenizer has no score token for {text:?} (its tokens {ids:?} decode to {back:?}): it cannot be used as a judge"
            );
            if let Some(prev) = seqs.iter().position(|q: &Vec<u32>| *q == ids) {
                bail!("the judge's tokenizer encodes scores {prev} and {s} identically ({ids:?})");
            }
            seqs.push(ids);
        }
        let mut nodes: BTreeMap<Vec<u32>, Vec<u32>> = BTreeMap::new();
        for seq in &seqs {
            for k in 0..seq.len() {
                let e = nodes.entry(seq[..k].to_vec()).or_default();
                if !e.contains(&seq[k]) {
                    e.push(seq[k]);
                }
            }
        }
        let chains =
            nodes.keys().filter(|n| !nodes.keys().any(|m| m.len() > n.len() && m.starts_with(n))).cloned().collect();
        Ok(ScoreTrie { seqs, nodes, chains })
    }

    /// The forwards that cover every node: one per chain, reading all of its
    /// positions, or (`per_prefix`) one per node, reading its last.
    fn passes(&self, per_prefix: bool) -> Vec<Pass> {
        match per_prefix {
            true => self.nodes.keys().map(|n| Pass { suffix: n.clone(), tail: 1 }).collect(),
            false => self.chains.iter().map(|c| Pass { suffix: c.clone(), tail: c.len() + 1 }).collect(),
        }
    }

    /// Final-answer probabilities of the 11 scores, renormalised, from the
    /// log-probabilities at each trie node.
    fn distribution(&self, logp: &BTreeMap<Vec<u32>, Vec<f32>>) -> Result<Vec<f32>> {
        let p = |node: &[u32], tok: u32| -> Result<f64> {
            let row = logp.get(node).context("missing judge pass for a score prefix")?;
            let lp = *row
                .get(tok as usize)
                .with_context(|| format!("score token {tok} outside the vocabulary ({})", row.len()))?;
            Ok(f64::from(lp).exp())
        };
        let mut raw = Vec::with_capacity(self.seqs.len());
        for seq in &self.seqs {
            let mut prob = 1.0f64;
            for k in 0..seq.len() {
                prob *= p(&seq[..k], seq[k])?;
            }
            // A score that is a prefix of another ends only if the answer
            // does not continue into the longer score.
            if let Some(children) = self.nodes.get(seq) {
                let mut cont = 0.0;
                for t in children {
                    cont += p(seq, *t)?;
                }
                prob *= (1.0 - cont).max(0.0);
            }
            raw.push(prob);
        }
        let total: f64 = raw.iter().sum();
        ensure!(total > 0.0 && total.is_finite(), "the judge put no probability on any score 0..10");
        Ok(raw.iter().map(|x| (x / total) as f32).collect())
    }
}

/// The LLM judge over a [`ScoreModel`].
pub struct Judge<M: ScoreModel> {
    model: M,
    config: JudgeConfig,
    trie: ScoreTrie,
    empty_responses: u64,
}

impl<M: ScoreModel> std::fmt::Debug for Judge<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge")
            .field("config", &self.config)
            .field("score_tokens", &self.trie.seqs)
            .finish_non_exhaustive()
    }
}

impl<M: ScoreModel> Judge<M> {
    /// Builds a judge, checking that the tokenizer has score tokens.
    ///
    /// # Errors
    /// A tokenizer without round-tripping tokens for every score 0..=10, or
    /// `batch_size` = 0.
    pub fn new(model: M, config: JudgeConfig) -> Result<Self> {
        ensure!(config.batch_size > 0, "judge batch_size must be at least 1");
        let trie = ScoreTrie::new(&model)?;
        Ok(Judge { model, config, trie, empty_responses: 0 })
    }

    /// Token ids of each score 0..=10 for this judge's tokenizer.
    pub fn score_tokens(&self) -> &[Vec<u32>] {
        &self.trie.seqs
    }

    /// Number of empty responses seen so far (scored 0 without a model call).
    pub fn empty_responses(&self) -> u64 {
        self.empty_responses
    }

    /// The wrapped model.
    pub fn model_mut(&mut self) -> &mut M {
        &mut self.model
    }

    /// The full judge prompt ids for one (input, expected, response).
    ///
    /// # Errors
    /// Tokenizer failures.
    pub fn prompt_ids(&self, input: &str, expected: &str, response: &str) -> Result<Vec<u32>> {
        let user = (self.config.template)(input, expected, response);
        let mut ids =
            self.model.chat_prompt_ids(self.config.system.as_deref(), &user).context("encoding the judge prompt")?;
        ids.extend(self.model.encode(&self.config.answer_prefix).context("encoding the judge's answer prefix")?);
        Ok(ids)
    }

    /// Score distributions (11 values each) for already built prompt ids.
    ///
    /// # Errors
    /// Model failures, or no probability on any score.
    pub fn distributions(&mut self, prompts: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        ensure!(!prompts.iter().any(Vec::is_empty), "judge prompt without tokens");
        let passes = self.trie.passes(self.config.pass_per_prefix);
        let mut out = Vec::with_capacity(prompts.len());
        // Keep the rows of one prompt together; cut whole prompts into chunks.
        let per_chunk = (self.config.batch_size / passes.len().max(1)).max(1);
        for chunk in prompts.chunks(per_chunk) {
            let mut rows = Vec::with_capacity(chunk.len() * passes.len());
            let mut tails = Vec::with_capacity(rows.capacity());
            for p in chunk {
                for pass in &passes {
                    let mut ids = p.clone();
                    ids.extend_from_slice(&pass.suffix);
                    rows.push(ids);
                    tails.push(pass.tail);
                }
            }
            let lps = self.model.tail_logprobs(&rows, &tails)?;
            ensure!(lps.len() == rows.len(), "judge model returned {} rows for {} prompts", lps.len(), rows.len());
            let mut it = lps.into_iter();
            for _ in chunk {
                let mut logp = BTreeMap::new();
                for pass in &passes {
                    let positions = it.next().context("judge rows ran out")?;
                    ensure!(
                        positions.len() == pass.tail,
                        "judge model returned {} positions for a tail of {}",
                        positions.len(),
                        pass.tail
                    );
                    for (j, row) in positions.into_iter().enumerate() {
                        let node = pass.suffix[..pass.suffix.len() + 1 - pass.tail + j].to_vec();
                        logp.entry(node).or_insert(row);
                    }
                }
                out.push(self.trie.distribution(&logp)?);
            }
        }
        Ok(out)
    }
}

impl<M: ScoreModel> Reward for Judge<M> {
    fn score(&mut self, items: &[RewardInput]) -> Result<Vec<RewardOutput>> {
        let mut out = vec![RewardOutput { reward: 0.0, distribution: None, empty_response: true }; items.len()];
        let mut todo = Vec::new();
        let mut prompts = Vec::new();
        for (i, it) in items.iter().enumerate() {
            match nonempty(&it.response) {
                None => self.empty_responses += 1,
                Some(resp) => {
                    prompts.push(self.prompt_ids(&it.input, &it.expected, &resp)?);
                    todo.push(i);
                }
            }
        }
        let dists = self.distributions(&prompts)?;
        for (i, d) in todo.into_iter().zip(dists) {
            out[i] = RewardOutput { reward: self.config.rule.apply(&d), distribution: Some(d), empty_response: false };
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token 200 decodes to nothing; with `seven_two_tokens` "7" is
    /// encoded as "7" followed by it, so the score trie branches.
    const SILENT: u32 = 200;

    /// A character-level toy model: vocabulary = bytes (and [`SILENT`]); the
    /// next-token distribution is fixed per last token of the prefix.
    struct Toy {
        /// log-probs after a prefix ending in "1".
        after_one: Vec<f32>,
        /// log-probs after a prefix ending in "7".
        after_seven: Vec<f32>,
        /// log-probs after any other prefix.
        root: Vec<f32>,
        digits_ok: bool,
        seven_two_tokens: bool,
        /// The tails asked for, one list per model call.
        calls: Vec<Vec<usize>>,
    }

    impl Toy {
        fn new(root: Vec<f32>, after_one: Vec<f32>) -> Self {
            Toy {
                root,
                after_one,
                after_seven: vec![0.0; 256],
                digits_ok: true,
                seven_two_tokens: false,
                calls: vec![],
            }
        }
    }

    impl ScoreModel for Toy {
        fn tail_logprobs(&mut self, seqs: &[Vec<u32>], tails: &[usize]) -> Result<Vec<Vec<Vec<f32>>>> {
            self.calls.push(tails.to_vec());
            let mut out = Vec::new();
            for (s, &k) in seqs.iter().zip(tails) {
                ensure!((1..=s.len()).contains(&k), "tail {k} of {} tokens", s.len());
                let row = (s.len() - k..s.len())
                    .map(|i| match s[i] {
                        t if t == u32::from(b'1') => self.after_one.clone(),
                        t if t == u32::from(b'7') => self.after_seven.clone(),
                        _ => self.root.clone(),
                    })
                    .collect();
                out.push(row);
            }
            Ok(out)
        }
        fn encode(&self, text: &str) -> Result<Vec<u32>> {
            let mut ids = Vec::new();
            for b in text.bytes().filter(|b| self.digits_ok || !b.is_ascii_digit()) {
                ids.push(u32::from(b));
                if self.seven_two_tokens && b == b'7' {
                    ids.push(SILENT);
                }
            }
            Ok(ids)
        }
        fn decode(&self, ids: &[u32]) -> Result<String> {
            Ok(ids.iter().filter(|&&i| i != SILENT).map(|i| char::from(*i as u8)).collect())
        }
        fn chat_prompt_ids(&self, _system: Option<&str>, user: &str) -> Result<Vec<u32>> {
            self.encode(&format!("U:{user}\nA:"))
        }
    }

    fn logp(pairs: &[(u8, f64)]) -> Vec<f32> {
        let mut v = vec![-30.0f32; 256];
        for (b, p) in pairs {
            v[*b as usize] = p.ln() as f32;
        }
        v
    }

    #[test]
    fn two_token_ten_and_final_one() {
        // P("1")=0.4, P("7")=0.3, P("x")=0.3 at the root; after "1": P("0")=0.75.
        let toy = Toy::new(logp(&[(b'1', 0.4), (b'7', 0.3), (b'x', 0.3)]), logp(&[(b'0', 0.75), (b'\n', 0.25)]));
        let mut j = Judge::new(toy, JudgeConfig::default()).unwrap();
        assert_eq!(j.score_tokens()[10], vec![u32::from(b'1'), u32::from(b'0')]);
        let d = j.distributions(&[vec![65, 66]]).unwrap().remove(0);
        // One row per prompt: the prompt and "1", its last two positions read.
        assert_eq!(j.model_mut().calls, vec![vec![2]]);
        let sum: f32 = d.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "sums to {sum}");
        // Unnormalised: P(10)=0.3, P(1 final)=0.1, P(7)=0.3 → /0.7 (+ tiny mass elsewhere).
        assert!((d[10] - 0.3 / 0.7).abs() < 1e-4, "{d:?}");
        assert!((d[1] - 0.1 / 0.7).abs() < 1e-4);
        assert!((d[7] - 0.3 / 0.7).abs() < 1e-4);
        // Argmax tie between 7 and 10 resolves to the lower score.
        assert_eq!(ScoreRule::Argmax.apply(&d), 0.7);
    }

    #[test]
    fn a_chain_of_prefixes_takes_one_pass_and_agrees_with_a_pass_per_prefix() {
        let toy = || Toy::new(logp(&[(b'1', 0.4), (b'7', 0.3), (b'x', 0.3)]), logp(&[(b'0', 0.75), (b'\n', 0.25)]));
        let prompts = vec![vec![65, 66], vec![67], vec![68, 69, 70]];
        let mut one = Judge::new(toy(), JudgeConfig { batch_size: 2, ..JudgeConfig::default() }).unwrap();
        let a = one.distributions(&prompts).unwrap();
        // Two prompts per chunk of 2 rows, one row each, two positions read.
        assert_eq!(one.model_mut().calls, vec![vec![2, 2], vec![2]]);
        let per_prefix = JudgeConfig { batch_size: 2, pass_per_prefix: true, ..JudgeConfig::default() };
        let mut old = Judge::new(toy(), per_prefix).unwrap();
        let b = old.distributions(&prompts).unwrap();
        // Before: two rows per prompt (the prompt, and the prompt with "1"), one position each.
        assert_eq!(old.model_mut().calls, vec![vec![1, 1], vec![1, 1], vec![1, 1]]);
        assert_eq!(a, b);
    }

    #[test]
    fn a_branching_trie_takes_one_pass_per_branch() {
        // "7" is two tokens, "7" and a silent one: the nodes [], ["1"], ["7"] form no chain.
        let toy = Toy {
            after_seven: logp(&[(SILENT as u8, 0.5), (b'x', 0.5)]),
            seven_two_tokens: true,
            ..Toy::new(logp(&[(b'1', 0.4), (b'7', 0.3), (b'x', 0.3)]), logp(&[(b'0', 0.75), (b'\n', 0.25)]))
        };
        let mut j = Judge::new(toy, JudgeConfig::default()).unwrap();
        assert_eq!(j.score_tokens()[7], vec![u32::from(b'7'), SILENT]);
        let d = j.distributions(&[vec![65, 66]]).unwrap().remove(0);
        // Two rows: the prompt with "1" and the prompt with "7", two positions each.
        assert_eq!(j.model_mut().calls, vec![vec![2, 2]]);
        // Unnormalised: P(10)=0.3, P(1 final)=0.1, P(7)=0.3·0.5=0.15.
        let total = 0.3 + 0.1 + 0.15;
        assert!((d[10] - 0.3 / total).abs() < 1e-4, "{d:?}");
        assert!((d[1] - 0.1 / total).abs() < 1e-4, "{d:?}");
        assert!((d[7] - 0.15 / total).abs() < 1e-4, "{d:?}");
        // The same as one pass per prefix (three rows).
        let toy = Toy {
            after_seven: logp(&[(SILENT as u8, 0.5), (b'x', 0.5)]),
            seven_two_tokens: true,
            ..Toy::new(logp(&[(b'1', 0.4), (b'7', 0.3), (b'x', 0.3)]), logp(&[(b'0', 0.75), (b'\n', 0.25)]))
        };
        let mut old = Judge::new(toy, JudgeConfig { pass_per_prefix: true, ..JudgeConfig::default() }).unwrap();
        assert_eq!(old.distributions(&[vec![65, 66]]).unwrap().remove(0), d);
        assert_eq!(old.model_mut().calls, vec![vec![1, 1, 1]]);
    }

    #[test]
    fn rules_on_hand_made_distribution() {
        let mut d = vec![0.0f32; 11];
        d[2] = 0.5;
        d[8] = 0.3;
        d[10] = 0.2;
        assert_eq!(ScoreRule::Argmax.apply(&d), 0.2);
        assert!((ScoreRule::Expected.apply(&d) - (1.0 + 2.4 + 2.0) / 10.0).abs() < 1e-6);
    }

    #[test]
    fn refuses_tokenizer_without_score_tokens() {
        let toy = Toy { digits_ok: false, ..Toy::new(vec![0.0; 256], vec![0.0; 256]) };
        let e = Judge::new(toy, JudgeConfig::default()).unwrap_err();
        assert!(e.to_string().contains("cannot be used as a judge"), "{e}");
    }

    #[test]
    fn empty_response_scores_zero_without_a_call() {
        let toy = Toy::new(logp(&[(b'5', 1.0)]), logp(&[(b'0', 1.0)]));
        let mut j = Judge::new(toy, JudgeConfig::default()).unwrap();
        let items = vec![
            RewardInput { input: "x".into(), expected: "y".into(), response: "  \n".into() },
            RewardInput { input: "x".into(), expected: "y".into(), response: "a reply".into() },
        ];
        let out = j.score(&items).unwrap();
        assert!(out[0].empty_response && out[0].reward == 0.0 && out[0].distribution.is_none());
        assert!(!out[1].empty_response);
        assert!((out[1].reward - 0.5).abs() < 1e-6);
        assert_eq!(j.empty_responses(), 1);
    }

    #[test]
    fn the_response_is_judged_as_given_never_parsed_again() {
        // Given a final response that itself holds a separator line (the E-step
        // already split reasoning from response once)
        let toy = Toy::new(logp(&[(b'5', 1.0)]), logp(&[(b'0', 1.0)]));
        let j = Judge::new(toy, JudgeConfig::default()).unwrap();
        let response = "first part\n### Response:\nsecond part";
        // when its judge prompt is built, then the whole response is in it
        let ids = j.prompt_ids("x", "y", response).unwrap();
        let text: String = ids.iter().map(|&i| char::from(i as u8)).collect();
        assert!(text.contains("first part") && text.contains("second part"), "{text}");
        // and an empty one is still recognized as empty
        assert_eq!(super::super::nonempty("  \n"), None);
    }
}
