//! The Porter stemmer in NLTK's default `NLTK_EXTENSIONS` mode
//! (`nltk/stem/porter.py`, NLTK 3.9.2), the stemmer of NLTK's METEOR.
//!
//! This is *not* the Snowball "Porter2" stemmer (what the `rust-stemmers`
//! crate implements) nor the original 1980 algorithm: NLTK adds a pool of
//! irregular forms ("dying" → "die"), keeps words of ≤ 2 letters, treats
//! "ies"/"ied" on 4-letter words specially, uses "bli" → "ble" and the
//! "fulli"/"logi" rules, a consonant-before-"y" condition in step 1c, and a
//! two-letter vowel-consonant word as "cvc". Words are handled as sequences of
//! Unicode scalar values, like Python strings. Parity is tested against the
//! stems NLTK gives for every word of the parity fixtures
//! (`tests/fixtures/parity/porter.jsonl`).

/// NLTK's irregular forms: word → stem.
const POOL: &[(&str, &str)] = &[
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

type W = Vec<char>;

fn is_consonant(w: &[char], i: usize) -> bool {
    match w[i] {
        'a' | 'e' | 'i' | 'o' | 'u' => false,
        'y' => {
            if i == 0 {
                true
            } else {
                !is_consonant(w, i - 1)
            }
        }
        _ => true,
    }
}

/// The measure m of `[C](VC)^m[V]`: the number of "vc" transitions.
fn measure(stem: &[char]) -> usize {
    let mut m = 0;
    for i in 1..stem.len() {
        if !is_consonant(stem, i - 1) && is_consonant(stem, i) {
            m += 1;
        }
    }
    m
}

fn contains_vowel(stem: &[char]) -> bool {
    (0..stem.len()).any(|i| !is_consonant(stem, i))
}

fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

fn ends_with(w: &[char], suffix: &str) -> bool {
    let s: Vec<char> = suffix.chars().collect();
    w.len() >= s.len() && w[w.len() - s.len()..] == s[..]
}

fn strip(w: &[char], suffix: &str) -> W {
    w[..w.len() - suffix.chars().count()].to_vec()
}

fn join(stem: W, rep: &str) -> W {
    let mut s = stem;
    s.extend(rep.chars());
    s
}

/// One rule: suffix, replacement, condition on the stem.
type Rule<'a> = (&'a str, &'a str, &'a dyn Fn(&[char]) -> bool);

/// NLTK's `_apply_rule_list`: the first rule whose suffix matches decides;
/// when its condition fails the word is returned unchanged.
fn apply_rules(word: W, rules: &[Rule<'_>]) -> W {
    for (suffix, rep, cond) in rules {
        if ends_with(&word, suffix) {
            let stem = strip(&word, suffix);
            return if cond(&stem) { join(stem, rep) } else { word };
        }
    }
    word
}

fn positive(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn gt1(stem: &[char]) -> bool {
    measure(stem) > 1
}

fn always(_: &[char]) -> bool {
    true
}

fn step1a(w: W) -> W {
    if ends_with(&w, "ies") && w.len() == 4 {
        return join(strip(&w, "ies"), "ie");
    }
    apply_rules(w, &[("sses", "ss", &always), ("ies", "i", &always), ("ss", "ss", &always), ("s", "", &always)])
}

fn step1b(w: W) -> W {
    if ends_with(&w, "ied") {
        return if w.len() == 4 { join(strip(&w, "ied"), "ie") } else { join(strip(&w, "ied"), "i") };
    }
    if ends_with(&w, "eed") {
        let stem = strip(&w, "eed");
        return if measure(&stem) > 0 { join(stem, "ee") } else { w };
    }
    let mut inter = None;
    for suffix in ["ed", "ing"] {
        if ends_with(&w, suffix) {
            let s = strip(&w, suffix);
            if contains_vowel(&s) {
                inter = Some(s);
                break;
            }
        }
    }
    let Some(s) = inter else { return w };
    if ends_with(&s, "at") {
        return join(strip(&s, "at"), "ate");
    }
    if ends_with(&s, "bl") {
        return join(strip(&s, "bl"), "ble");
    }
    if ends_with(&s, "iz") {
        return join(strip(&s, "iz"), "ize");
    }
    if ends_double_consonant(&s) {
        let last = s[s.len() - 1];
        // "*d" rule: drop one of the doubled letters unless it is l, s or z.
        return if !matches!(last, 'l' | 's' | 'z') { s[..s.len() - 1].to_vec() } else { s };
    }
    if measure(&s) == 1 && ends_cvc(&s) {
        return join(s, "e");
    }
    s
}

fn step1c(w: W) -> W {
    let cond = |stem: &[char]| stem.len() > 1 && is_consonant(stem, stem.len() - 1);
    apply_rules(w, &[("y", "i", &cond)])
}

fn step2(w: W) -> W {
    if ends_with(&w, "alli") && positive(&strip(&w, "alli")) {
        return step2(join(strip(&w, "alli"), "al"));
    }
    let logi_stem_ok = w.len() >= 3 && positive(&w[..w.len() - 3]);
    let logi = move |_: &[char]| logi_stem_ok;
    apply_rules(
        w,
        &[
            ("ational", "ate", &positive),
            ("tional", "tion", &positive),
            ("enci", "ence", &positive),
            ("anci", "ance", &positive),
            ("izer", "ize", &positive),
            ("bli", "ble", &positive),
            ("alli", "al", &positive),
            ("entli", "ent", &positive),
            ("eli", "e", &positive),
            ("ousli", "ous", &positive),
            ("ization", "ize", &positive),
            ("ation", "ate", &positive),
            ("ator", "ate", &positive),
            ("alism", "al", &positive),
            ("iveness", "ive", &positive),
            ("fulness", "ful", &positive),
            ("ousness", "ous", &positive),
            ("aliti", "al", &positive),
            ("iviti", "ive", &positive),
            ("biliti", "ble", &positive),
            ("fulli", "ful", &positive),
            ("logi", "log", &logi),
        ],
    )
}

fn step3(w: W) -> W {
    apply_rules(
        w,
        &[
            ("icate", "ic", &positive),
            ("ative", "", &positive),
            ("alize", "al", &positive),
            ("iciti", "ic", &positive),
            ("ical", "ic", &positive),
            ("ful", "", &positive),
            ("ness", "", &positive),
        ],
    )
}

fn step4(w: W) -> W {
    let ion = |stem: &[char]| measure(stem) > 1 && matches!(stem.last(), Some('s' | 't'));
    apply_rules(
        w,
        &[
            ("al", "", &gt1),
            ("ance", "", &gt1),
            ("ence", "", &gt1),
            ("er", "", &gt1),
            ("ic", "", &gt1),
            ("able", "", &gt1),
            ("ible", "", &gt1),
            ("ant", "", &gt1),
            ("ement", "", &gt1),
            ("ment", "", &gt1),
            ("ent", "", &gt1),
            ("ion", "", &ion),
            ("ou", "", &gt1),
            ("ism", "", &gt1),
            ("ate", "", &gt1),
            ("iti", "", &gt1),
            ("ous", "", &gt1),
            ("ive", "", &gt1),
            ("ize", "", &gt1),
        ],
    )
}

fn step5a(w: W) -> W {
    if ends_with(&w, "e") {
        let stem = strip(&w, "e");
        let m = measure(&stem);
        if m > 1 || (m == 1 && !ends_cvc(&stem)) {
            return stem;
        }
    }
    w
}

fn step5b(w: W) -> W {
    let ok = !w.is_empty() && measure(&w[..w.len() - 1]) > 1;
    let cond = move |_: &[char]| ok;
    apply_rules(w, &[("ll", "l", &cond)])
}

/// Stems one word as `nltk.stem.PorterStemmer().stem(word)` does (the word
/// is lowercased first; the irregular-form pool is looked up with the word
/// as given, as in NLTK).
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some((_, s)) = POOL.iter().find(|(w, _)| *w == word) {
        return (*s).to_string();
    }
    if word.chars().count() <= 2 {
        return lower;
    }
    let mut w: W = lower.chars().collect();
    w = step1a(w);
    w = step1b(w);
    w = step1c(w);
    w = step2(w);
    w = step3(w);
    w = step4(w);
    w = step5a(w);
    w = step5b(w);
    w.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn nltk_examples() {
        // Values from NLTK 3.9.2's PorterStemmer (default mode).
        for (w, s) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"),
            ("dying", "die"),
            ("generalizations", "gener"),
            ("running", "run"),
            ("hopping", "hop"),
            ("filing", "file"),
            ("happy", "happi"),
            ("relational", "relat"),
            ("analogi", "analog"),
            ("controll", "control"),
            ("is", "is"),
            ("news", "news"),
        ] {
            assert_eq!(stem(w), s, "stem of {w}");
        }
    }
}
