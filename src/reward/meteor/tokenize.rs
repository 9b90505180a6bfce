//! NLTK 3.9.2's `word_tokenize(text)` (English): Punkt sentence splitting
//! (`PunktTokenizer("english").tokenize`, boundaries realigned) followed by
//! `NLTKWordTokenizer.tokenize` on each sentence. This is the tokenizer that
//! Hugging Face `evaluate`'s METEOR applies to prediction and reference, so
//! LongLaMP's METEOR depends on it: a sentence-final period is split off only
//! at the end of a Punkt sentence.
//!
//! Punkt (Kiss & Strunk 2006; `nltk/tokenize/punkt.py`) is implemented for
//! inference only, with NLTK's pretrained English parameters (abbreviations,
//! collocations, sentence starters, orthographic context) read from a
//! `punkt_tab/english` folder that `scripts/setup.sh` writes into the cache.
//! Strings are indexed by Unicode scalar values, as Python does; Python's
//! `\s`/`str.isspace` (which also counts U+001C..U+001F) is matched where
//! NLTK relies on it. Known residual difference: Rust's `\w` differs from
//! Python's on a few exotic code points (combining marks, `No` digits).

use anyhow::{Context, Result};
use fancy_regex::Regex;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Python's `str.isspace` for one character.
pub fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `\s` and `\S` as regex classes.
const S: &str = r"[\s\x1C-\x1F]";
const NS: &str = r"[^\s\x1C-\x1F]";

// Orthographic context flags (punkt.py).
const ORTHO_BEG_UC: u32 = 1 << 1;
const ORTHO_MID_UC: u32 = 1 << 2;
const ORTHO_UNK_UC: u32 = 1 << 3;
const ORTHO_BEG_LC: u32 = 1 << 4;
const ORTHO_MID_LC: u32 = 1 << 5;
const ORTHO_UNK_LC: u32 = 1 << 6;
const ORTHO_UC: u32 = ORTHO_BEG_UC + ORTHO_MID_UC + ORTHO_UNK_UC;
const ORTHO_LC: u32 = ORTHO_BEG_LC + ORTHO_MID_LC + ORTHO_UNK_LC;

/// Punkt's learned parameters for one language.
#[derive(Clone, Debug, Default)]
pub struct PunktParams {
    /// Abbreviation types (lowercase, without the final period).
    pub abbrev_types: HashSet<String>,
    /// Known collocations (type before the period, type after).
    pub collocations: HashSet<(String, String)>,
    /// Frequent sentence starters.
    pub sent_starters: HashSet<String>,
    /// Orthographic context bit flags per type.
    pub ortho_context: HashMap<String, u32>,
}

/// Where `scripts/setup.sh` writes NLTK's English Punkt parameters.
pub fn default_punkt_dir() -> PathBuf {
    crate::paths::cache_root().join("nltk/tokenizers/punkt_tab/english")
}

impl PunktParams {
    /// Reads NLTK's `punkt_tab` layout: `abbrev_types.txt`,
    /// `sent_starters.txt` (one entry a line), `collocations.tab` (two
    /// tab-separated types a line), `ortho_context.tab` (type, tab, integer).
    ///
    /// # Errors
    /// A missing file (with the set-up hint) or a malformed line, naming the
    /// file and the line number.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| -> Result<Vec<String>> {
            let p = dir.join(name);
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("reading Punkt parameters {} (run scripts/setup.sh)", p.display()))?;
            // NLTK's TabDecoder strips only the newline of each line.
            Ok(text.split_inclusive('\n').map(|l| l.strip_suffix('\n').unwrap_or(l).to_string()).collect())
        };
        let mut p = PunktParams {
            abbrev_types: read("abbrev_types.txt")?.into_iter().collect(),
            sent_starters: read("sent_starters.txt")?.into_iter().collect(),
            ..Default::default()
        };
        for (i, line) in read("collocations.tab")?.into_iter().enumerate() {
            let (a, b) = line.split_once('\t').with_context(|| {
                format!("{}/collocations.tab line {}: expected two tab-separated types", dir.display(), i + 1)
            })?;
            p.collocations.insert((a.to_string(), b.to_string()));
        }
        for (i, line) in read("ortho_context.tab")?.into_iter().enumerate() {
            let (a, b) = line.rsplit_once('\t').with_context(|| {
                format!("{}/ortho_context.tab line {}: expected type<TAB>flags", dir.display(), i + 1)
            })?;
            let v: u32 = b
                .parse()
                .with_context(|| format!("{}/ortho_context.tab line {}: bad flags {b:?}", dir.display(), i + 1))?;
            p.ortho_context.insert(a.to_string(), v);
        }
        Ok(p)
    }
}

/// A Punkt token with its annotations.
#[derive(Debug)]
struct Tok {
    tok: String,
    typ: String,
    period_final: bool,
    sentbreak: bool,
    abbr: bool,
    ellipsis: bool,
}

fn first_char(s: &str) -> char {
    s.chars().next().unwrap_or(' ')
}

/// Python `\w` minus `\d`, for one character (letters and underscore).
fn is_letterish(c: char) -> bool {
    (c.is_alphanumeric() || c == '_') && !c.is_numeric()
}

impl Tok {
    fn new(tok: String, numeric: &Regex) -> Self {
        let lower = tok.to_lowercase();
        let typ = if numeric.is_match(&lower).unwrap_or(false) { "##number##".to_string() } else { lower };
        let period_final = tok.ends_with('.');
        Tok { tok, typ, period_final, sentbreak: false, abbr: false, ellipsis: false }
    }
    fn type_no_period(&self) -> &str {
        if self.typ.chars().count() > 1 && self.typ.ends_with('.') {
            &self.typ[..self.typ.len() - 1]
        } else {
            &self.typ
        }
    }
    fn type_no_sentperiod(&self) -> &str {
        if self.sentbreak {
            self.type_no_period()
        } else {
            &self.typ
        }
    }
    fn first_upper(&self) -> bool {
        first_char(&self.tok).is_uppercase()
    }
    fn first_lower(&self) -> bool {
        first_char(&self.tok).is_lowercase()
    }
    fn is_ellipsis(&self) -> bool {
        // `\.\.+$`
        self.tok.chars().count() >= 2 && self.tok.chars().all(|c| c == '.')
    }
    fn is_initial(&self) -> bool {
        // `[^\W\d]\.$`
        let cs: Vec<char> = self.tok.chars().collect();
        cs.len() == 2 && is_letterish(cs[0]) && cs[1] == '.'
    }
}

/// NLTK's `word_tokenize` for English: Punkt sentences, then the improved
/// Treebank word tokenizer.
pub struct WordTokenizer {
    params: PunktParams,
    punkt_word: Regex,
    numeric: Regex,
    starting_quotes: Vec<(Regex, &'static str)>,
    punctuation: Vec<(Regex, &'static str)>,
    parens: Regex,
    double_dashes: Regex,
    ending_quotes: Vec<(Regex, &'static str)>,
    contractions: Vec<Regex>,
}

impl std::fmt::Debug for WordTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordTokenizer").finish_non_exhaustive()
    }
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this module; a failure is a programming
    // error caught by the unit tests.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("valid tokenizer regex")
}

/// Python's `$` (end, or before a final newline) for patterns below.
const END: &str = r"(?=\n?\z)";

impl WordTokenizer {
    /// Builds the tokenizer with the given Punkt parameters.
    pub fn new(params: PunktParams) -> Self {
        let non_word = r#"(?:[)";}\]*:@'({\[?!])"#;
        let multi = format!(r"(?:\-{{2,}}|\.{{2,}}|(?:\.{S}){{2,}}\.)");
        let word_start = r#"[^\("`{\[:;&\#*@)}\]\-,]"#;
        let punkt_word = format!(
            r"(?:{multi}|(?={word_start}){NS}+?(?={S}|\z|{non_word}|{multi}|,(?=\z|{S}|{non_word}|{multi}))|{NS})"
        );
        let q_end = r#"[\]\)}>"'»”’ ]"#;
        WordTokenizer {
            params,
            punkt_word: re(&punkt_word),
            numeric: re(r"^-?[\.,]?\d[\d,\.-]*\.?(?=\n?\z)"),
            starting_quotes: vec![
                (re(r"([«“‘„]|[`]+)"), " ${1} "),
                (re(r#"^""#), "``"),
                (re(r"(``)"), " ${1} "),
                (re(r#"([ \(\[{<])("|'{2})"#), "${1} `` "),
                (re(r"(?i)(')(?!re|ve|ll|m|t|s|d|n)(\w)\b"), "${1} ${2}"),
            ],
            punctuation: vec![
                (re(&format!(r"([^\.])(\.)({q_end}*){S}*{END}")), "${1} ${2} ${3} "),
                (re(r"([:,])([^\d])"), " ${1} ${2}"),
                (re(&format!(r"([:,]){END}")), " ${1} "),
                (re(r"\.{2,}"), " ${0} "),
                (re(r"[;@#$%&]"), " ${0} "),
                (re(&format!(r#"([^\.])(\.)([\]\)}}>"']*){S}*{END}"#)), "${1} ${2}${3} "),
                (re(r"[?!]"), " ${0} "),
                (re(r"([^'])' "), "${1} ' "),
                (re(r"[*]"), " ${0} "),
            ],
            parens: re(r"[\]\[\(\)\{\}<>]"),
            double_dashes: re(r"--"),
            ending_quotes: vec![
                (re(r"([»”’])"), " ${1} "),
                (re(r"''"), " '' "),
                (re(r#"""#), " '' "),
                (re(&format!(r"{S}+")), " "),
                (re(r"([^' ])('[sS]|'[mM]|'[dD]|') "), "${1} ${2} "),
                (re(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), "${1} ${2} "),
            ],
            contractions: [
                r"(?i)\b(can)(not)\b",
                r"(?i)\b(d)('ye)\b",
                r"(?i)\b(gim)(me)\b",
                r"(?i)\b(gon)(na)\b",
                r"(?i)\b(got)(ta)\b",
                r"(?i)\b(lem)(me)\b",
                r"(?i)\b(more)('n)\b",
                &format!(r"(?i)\b(wan)(na)(?={S})"),
                r"(?i) ('t)(is)\b",
                r"(?i) ('t)(was)\b",
            ]
            .iter()
            .map(|p| re(p))
            .collect(),
        }
    }

    /// Loads the Punkt parameters from `dir` (see [`PunktParams::load`]).
    ///
    /// # Errors
    /// As [`PunktParams::load`].
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self::new(PunktParams::load(dir)?))
    }

    /// Loads the parameters from [`default_punkt_dir`].
    ///
    /// # Errors
    /// As [`PunktParams::load`].
    pub fn load_default() -> Result<Self> {
        Self::load(&default_punkt_dir())
    }

    /// `word_tokenize(text)`.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        for (s, e) in self.sentence_spans(&chars) {
            let sent: String = chars[s..e].iter().collect();
            out.extend(self.treebank(&sent));
        }
        out
    }

    /// Punkt sentences of `text` (for tests and inspection).
    pub fn sentences(&self, text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        self.sentence_spans(&chars).into_iter().map(|(s, e)| chars[s..e].iter().collect()).collect()
    }

    // ---- Treebank (NLTKWordTokenizer.tokenize) ----

    fn sub(re: &Regex, text: &str, rep: &str) -> String {
        re.replace_all(text, rep).into_owned()
    }

    fn treebank(&self, sentence: &str) -> Vec<String> {
        let mut t = sentence.to_string();
        for (r, rep) in &self.starting_quotes {
            t = Self::sub(r, &t, rep);
        }
        for (r, rep) in &self.punctuation {
            t = Self::sub(r, &t, rep);
        }
        t = Self::sub(&self.parens, &t, " ${0} ");
        t = Self::sub(&self.double_dashes, &t, " -- ");
        t = format!(" {t} ");
        for (r, rep) in &self.ending_quotes {
            t = Self::sub(r, &t, rep);
        }
        for r in &self.contractions {
            t = Self::sub(r, &t, " ${1} ${2} ");
        }
        t.split(py_is_space).filter(|s| !s.is_empty()).map(str::to_string).collect()
    }

    // ---- Punkt ----

    /// `PunktLanguageVars.word_tokenize` on each non-blank line, with the
    /// first-pass annotation.
    fn punkt_tokens(&self, text: &str) -> Vec<Tok> {
        let mut toks = Vec::new();
        for line in text.split('\n') {
            if line.chars().all(py_is_space) {
                continue;
            }
            for m in self.punkt_word.find_iter(line).flatten() {
                let mut t = Tok::new(m.as_str().to_string(), &self.numeric);
                self.first_pass(&mut t);
                toks.push(t);
            }
        }
        toks
    }

    fn first_pass(&self, t: &mut Tok) {
        let tok = t.tok.as_str();
        if tok == "." || tok == "?" || tok == "!" {
            t.sentbreak = true;
        } else if t.is_ellipsis() {
            t.ellipsis = true;
        } else if t.period_final && !tok.ends_with("..") {
            let body = tok[..tok.len() - 1].to_lowercase();
            let last = body.rsplit('-').next().unwrap_or("");
            if self.params.abbrev_types.contains(&body) || self.params.abbrev_types.contains(last) {
                t.abbr = true;
            } else {
                t.sentbreak = true;
            }
        }
    }

    fn ortho(&self, typ: &str) -> u32 {
        self.params.ortho_context.get(typ).copied().unwrap_or(0)
    }

    /// `_ortho_heuristic`: Some(true) = sentence starter, Some(false) = not,
    /// None = unknown.
    fn ortho_heuristic(&self, t: &Tok) -> Option<bool> {
        if matches!(t.tok.as_str(), ";" | ":" | "," | "." | "!" | "?") {
            return Some(false);
        }
        let oc = self.ortho(t.type_no_sentperiod());
        if t.first_upper() && (oc & ORTHO_LC) != 0 && (oc & ORTHO_MID_UC) == 0 {
            return Some(true);
        }
        if t.first_lower() && ((oc & ORTHO_UC) != 0 || (oc & ORTHO_BEG_LC) == 0) {
            return Some(false);
        }
        None
    }

    fn second_pass(&self, t1: &mut Tok, t2: &Tok) {
        if !t1.period_final {
            return;
        }
        let typ = t1.type_no_period().to_string();
        let next_typ = t2.type_no_sentperiod().to_string();
        let initial = t1.is_initial();
        if self.params.collocations.contains(&(typ.clone(), next_typ.clone())) {
            t1.sentbreak = false;
            t1.abbr = true;
            return;
        }
        if (t1.abbr || t1.ellipsis) && !initial {
            if self.ortho_heuristic(t2) == Some(true) {
                t1.sentbreak = true;
                return;
            }
            if t2.first_upper() && self.params.sent_starters.contains(&next_typ) {
                t1.sentbreak = true;
                return;
            }
        }
        if initial || typ == "##number##" {
            let s = self.ortho_heuristic(t2);
            if s == Some(false) {
                t1.sentbreak = false;
                t1.abbr = true;
                return;
            }
            if s.is_none() && initial && t2.first_upper() && (self.ortho(&next_typ) & ORTHO_LC) == 0 {
                t1.sentbreak = false;
                t1.abbr = true;
            }
        }
    }

    /// `text_contains_sentbreak`: a token other than the last one breaks.
    fn contains_sentbreak(&self, text: &str) -> bool {
        let mut toks = self.punkt_tokens(text);
        let n = toks.len();
        for i in 0..n {
            if i + 1 < n {
                let (a, b) = toks.split_at_mut(i + 1);
                self.second_pass(&mut a[i], &b[0]);
            }
            if toks[i].sentbreak && i + 1 < n {
                return true;
            }
        }
        false
    }

    /// `span_tokenize(text)` with boundary realignment, in char indices.
    fn sentence_spans(&self, text: &[char]) -> Vec<(usize, usize)> {
        // Potential ends: a sentence-end char followed by other punctuation
        // (after_tok = that char, no next_tok) or by whitespace and a token.
        struct M {
            start: usize,
            end: usize,
            after_end: usize,
            next_tok: Option<usize>,
        }
        let non_word =
            |c: char| matches!(c, ')' | '"' | ';' | '}' | ']' | '*' | ':' | '@' | '\'' | '(' | '{' | '[' | '?' | '!');
        let mut matches = Vec::new();
        for i in 0..text.len() {
            if !matches!(text[i], '.' | '?' | '!') {
                continue;
            }
            let j = i + 1;
            if j < text.len() && non_word(text[j]) {
                matches.push(M { start: i, end: j, after_end: j + 1, next_tok: None });
                continue;
            }
            let mut k = j;
            while k < text.len() && py_is_space(text[k]) {
                k += 1;
            }
            if k > j && k < text.len() {
                let mut e = k;
                while e < text.len() && !py_is_space(text[e]) {
                    e += 1;
                }
                matches.push(M { start: i, end: j, after_end: e, next_tok: Some(k) });
            }
        }
        // _match_potential_end_contexts
        let ascii_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}');
        let mut contexts: Vec<(usize, String)> = Vec::new(); // (match index, context)
        let mut prev: Option<usize> = None;
        let (mut prev_start, mut prev_stop) = (0usize, 0usize);
        let ctx = |ps: usize, pe: usize, m: &M| -> String {
            text[ps..pe].iter().chain(text[m.start..m.end].iter()).chain(text[m.end..m.after_end].iter()).collect()
        };
        for (mi, m) in matches.iter().enumerate() {
            let before = &text[prev_stop..m.start];
            let last_ws = (0..before.len()).rev().find(|&i| ascii_ws(before[i])).unwrap_or(0);
            let idx = if last_ws != 0 { last_ws + prev_stop + 1 } else { prev_start };
            if let Some(p) = prev {
                if prev_stop <= idx {
                    contexts.push((p, ctx(prev_start, prev_stop, &matches[p])));
                }
            }
            prev = Some(mi);
            prev_start = idx;
            prev_stop = m.start;
        }
        if let Some(p) = prev {
            contexts.push((p, ctx(prev_start, prev_stop, &matches[p])));
        }
        // _slices_from_text
        let mut slices = Vec::new();
        let mut last_break = 0usize;
        for (p, context) in contexts {
            if self.contains_sentbreak(&context) {
                let m = &matches[p];
                slices.push((last_break, m.end));
                last_break = m.next_tok.unwrap_or(m.end);
            }
        }
        let mut rend = text.len();
        while rend > 0 && py_is_space(text[rend - 1]) {
            rend -= 1;
        }
        slices.push((last_break, rend));
        // _realign_boundaries
        let closing = |c: char| matches!(c, '"' | '\'' | ')' | ']' | '}');
        let realign_match = |t: &[char]| -> Option<(usize, usize)> {
            // `["')\]}]+?(?:\s+|(?=--)|$)` (MULTILINE) matched at the start
            // of the next sentence's text `t`; returns (length of the
            // closing run, whole match length).
            let mut k = 0;
            while k < t.len() && closing(t[k]) {
                k += 1;
                if k < t.len() && py_is_space(t[k]) {
                    let mut e = k;
                    while e < t.len() && py_is_space(t[e]) {
                        e += 1;
                    }
                    return Some((k, e));
                }
                if k + 1 < t.len() && t[k] == '-' && t[k + 1] == '-' {
                    return Some((k, k));
                }
                if k == t.len() || t[k] == '\n' {
                    return Some((k, k));
                }
            }
            None
        };
        let mut out = Vec::new();
        let mut realign = 0usize;
        for i in 0..slices.len() {
            let (s1, e1) = (slices[i].0 + realign, slices[i].1);
            if i + 1 == slices.len() {
                if s1 < e1 {
                    out.push((s1, e1));
                }
                continue;
            }
            let (s2, e2) = slices[i + 1];
            // The realignment regex sees only text[s2..e2].
            let m = if s2 < e2 { realign_match(&text[s2..e2]) } else { None };
            match m {
                Some((keep, full)) => {
                    out.push((s1, s2 + keep));
                    realign = full;
                }
                None => {
                    realign = 0;
                    if s1 < e1 {
                        out.push((s1, e1));
                    }
                }
            }
        }
        out
    }
}
