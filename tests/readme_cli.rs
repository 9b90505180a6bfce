//! Every `restpg …` command the README shows parses with the real command
//! line definition, so a documented example cannot fail on a missing or
//! renamed flag.

use clap::Parser as _;

/// Splits a shell line into words: whitespace-separated, `"…"` and `'…'`
/// quoting, a `#` outside quotes starting a comment.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `restpg` command lines of the README's shell blocks.
fn readme_commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let mut in_sh = false;
    let mut commands = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim_start_matches('`').starts_with("sh");
            continue;
        }
        if in_sh && line.starts_with("restpg ") {
            commands.push(shell_words(line));
        }
    }
    commands
}

#[test]
fn the_readmes_commands_parse() {
    let commands = readme_commands();
    assert!(commands.len() >= 10, "found {commands:?}");
    assert!(commands.iter().any(|c| c.get(1).map(String::as_str) == Some("eval")), "{commands:?}");
    for words in &commands {
        if let Err(e) = restpg::cli::Cli::try_parse_from(words) {
            panic!("the README's `{}` does not parse:\n{e}", words.join(" "));
        }
    }
}

#[test]
fn shell_words_split_like_a_shell() {
    assert_eq!(
        shell_words(r#"restpg generate --prompt "a b" x  # note"#),
        ["restpg", "generate", "--prompt", "a b", "x"]
    );
    assert_eq!(shell_words("restpg data build --out data/   # or: x"), ["restpg", "data", "build", "--out", "data/"]);
}
