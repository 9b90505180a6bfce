//! The part of WordNet 3.0 that NLTK's METEOR uses: for a word, the set of
//! lemma names (without "_") of every synset that `wordnet.synsets(word)`
//! returns in NLTK 3.9.2 (`nltk/corpus/reader/wordnet.py`).
//!
//! `synsets(word)` lowercases the word, then for each part of speech in
//! NLTK's order (noun, verb, adjective, adverb) runs `_morphy`: if the word is
//! in that part of speech's exception list (`*.exc`) the candidates are the
//! word and its listed base forms, otherwise the word and the forms from one
//! application of the detachment rules (`MORPHOLOGICAL_SUBSTITUTIONS`); each
//! candidate found in the index (`index.*`) under that part of speech
//! contributes its synsets (`data.*`, by byte offset). Lemma names drop their
//! syntactic marker (`(a)`, `(p)`, `(ip)`).
//!
//! The files are Debian's `wordnet-base` (WordNet 3.0, in
//! `/usr/share/wordnet`), which `scripts/setup.sh` installs. Everything is
//! parsed once at load (~1 s) into hash maps.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The default WordNet folder (Debian's `wordnet-base`).
pub const DEFAULT_WORDNET_DIR: &str = "/usr/share/wordnet";

/// Parts of speech in NLTK's `POS_LIST` order, with their file suffixes.
const POS: [(char, &str); 4] = [('n', "noun"), ('v', "verb"), ('a', "adj"), ('r', "adv")];

fn substitutions(pos: char) -> &'static [(&'static str, &'static str)] {
    match pos {
        'n' => &[
            ("s", ""),
            ("ses", "s"),
            ("ves", "f"),
            ("xes", "x"),
            ("zes", "z"),
            ("ches", "ch"),
            ("shes", "sh"),
            ("men", "man"),
            ("ies", "y"),
        ],
        'v' => &[("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
        'a' => &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
        _ => &[],
    }
}

/// One part of speech: lemma → synset offsets, exceptions, and the lemma
/// names of each synset (by byte offset in `data.*`).
#[derive(Default)]
struct PosData {
    index: HashMap<String, Vec<u64>>,
    exceptions: HashMap<String, Vec<String>>,
    synsets: HashMap<u64, Vec<String>>,
}

/// WordNet loaded into memory for synonym look-ups.
pub struct WordNet {
    dir: PathBuf,
    pos: Vec<(char, PosData)>,
}

impl std::fmt::Debug for WordNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordNet").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn read(dir: &Path, name: &str) -> Result<String> {
    let p = dir.join(name);
    let bytes = std::fs::read(&p).with_context(|| {
        format!("reading WordNet file {} (install Debian's wordnet-base: run scripts/setup.sh)", p.display())
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl WordNet {
    /// Loads `index.*`, `data.*` and `*.exc` from `dir`.
    ///
    /// # Errors
    /// A missing file (with the set-up hint) or a malformed line, naming the
    /// file and line number.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut all = Vec::new();
        for (p, suffix) in POS {
            let mut d = PosData::default();
            let name = format!("index.{suffix}");
            for (i, line) in read(dir, &name)?.lines().enumerate() {
                if line.starts_with(' ') || line.is_empty() {
                    continue;
                }
                let parse = || -> Option<(String, Vec<u64>)> {
                    let mut it = line.split_whitespace();
                    let lemma = it.next()?.to_string();
                    let _pos = it.next()?;
                    let n_synsets: usize = it.next()?.parse().ok()?;
                    let n_pointers: usize = it.next()?.parse().ok()?;
                    for _ in 0..n_pointers {
                        it.next()?;
                    }
                    let _n_senses = it.next()?;
                    let _tagged = it.next()?;
                    let offsets = (0..n_synsets).map(|_| it.next()?.parse().ok()).collect::<Option<Vec<u64>>>()?;
                    Some((lemma, offsets))
                };
                let (lemma, offsets) = parse()
                    .with_context(|| format!("{}/{name}, line {}: malformed index line", dir.display(), i + 1))?;
                d.index.insert(lemma, offsets);
            }
            let name = format!("{suffix}.exc");
            for line in read(dir, &name)?.lines() {
                let mut it = line.split_whitespace();
                if let Some(k) = it.next() {
                    d.exceptions.insert(k.to_string(), it.map(str::to_string).collect());
                }
            }
            let name = format!("data.{suffix}");
            let path = dir.join(&name);
            let bytes = std::fs::read(&path).with_context(|| {
                format!("reading WordNet file {} (install Debian's wordnet-base: run scripts/setup.sh)", path.display())
            })?;
            let mut offset = 0u64;
            // Offsets are byte offsets: walk the raw bytes line by line.
            for (i, raw_line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
                let here = offset;
                offset += raw_line.len() as u64;
                let line = String::from_utf8_lossy(raw_line);
                if line.starts_with(' ') || line.trim().is_empty() {
                    continue;
                }
                let parse = || -> Option<(u64, Vec<String>)> {
                    let mut it = line.split_whitespace();
                    let off: u64 = it.next()?.parse().ok()?;
                    let _lex = it.next()?;
                    let _ss_type = it.next()?;
                    let n = usize::from_str_radix(it.next()?, 16).ok()?;
                    let mut names = Vec::with_capacity(n);
                    for _ in 0..n {
                        let raw = it.next()?;
                        let _lex_id = it.next()?;
                        // Drop a syntactic marker such as "(a)" or "(ip)".
                        let name = match raw.find('(') {
                            Some(k) if raw.ends_with(')') => &raw[..k],
                            _ => raw,
                        };
                        names.push(name.to_string());
                    }
                    Some((off, names))
                };
                let (off, names) = parse()
                    .with_context(|| format!("{}/{name}, line {}: malformed synset line", dir.display(), i + 1))?;
                if off != here {
                    bail!(
                        "{}/{name}, line {}: synset offset {off} does not match its byte offset {here}",
                        dir.display(),
                        i + 1
                    );
                }
                d.synsets.insert(off, names);
            }
            all.push((p, d));
        }
        Ok(WordNet { dir: dir.to_path_buf(), pos: all })
    }

    /// Loads the default Debian WordNet (see [`DEFAULT_WORDNET_DIR`]).
    ///
    /// # Errors
    /// As [`WordNet::load`].
    pub fn load_default() -> Result<Self> {
        Self::load(Path::new(DEFAULT_WORDNET_DIR))
    }

    /// NLTK's `_morphy(form, pos)`: candidate base forms present in the
    /// index under `pos`, first-seen order, without duplicates.
    fn morphy(&self, d: &PosData, pos: char, form: &str) -> Vec<String> {
        let forms: Vec<String> = match d.exceptions.get(form) {
            Some(exc) => exc.clone(),
            None => substitutions(pos)
                .iter()
                .filter(|(old, _)| form.ends_with(old))
                .map(|(old, new)| format!("{}{}", &form[..form.len() - old.len()], new))
                .collect(),
        };
        let mut out: Vec<String> = Vec::new();
        for f in std::iter::once(form.to_string()).chain(forms) {
            if d.index.contains_key(&f) && !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }

    /// The lemma names (without "_") of all synsets of `word`, as METEOR's
    /// synonym stage collects them (before it adds the word itself).
    pub fn synonyms(&self, word: &str) -> BTreeSet<String> {
        let lemma = word.to_lowercase();
        let mut out = BTreeSet::new();
        for (p, d) in &self.pos {
            for form in self.morphy(d, *p, &lemma) {
                if let Some(offsets) = d.index.get(&form) {
                    for off in offsets {
                        if let Some(names) = d.synsets.get(off) {
                            out.extend(names.iter().filter(|n| !n.contains('_')).cloned());
                        }
                    }
                }
            }
        }
        out
    }
}
