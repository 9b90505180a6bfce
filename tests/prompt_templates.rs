//! Prompt templates: the four prompts render what they must, edited
//! templates are checked at load, the reasoning parser splits reasoning from
//! response, token budgets trim the profile and never the request.

use std::collections::BTreeMap;

use restpg::data::{Example, ProfileItem, Task};
use restpg::prompt::{parse_output, PromptKind, TemplateError, Templates, EMPTY_PROFILE, RESPONSE_SEPARATOR};

fn example() -> Example {
    let item = |id: &str, s: &str, c: &str| ProfileItem {
        id: id.into(),
        fields: BTreeMap::from([("summary".to_string(), s.to_string()), ("content".to_string(), c.to_string())]),
    };
    Example {
        id: "topic-1".into(),
        task: Task::TopicWriting,
        user_id: "u".into(),
        input: "Write the full post for the following summary: \"Moving to a new city\"".into(),
        output: "I moved for a job and joined a climbing gym.".into(),
        profile: vec![
            item("p0", "Learning to climb", &"Bouldering scared me at first but people were kind. ".repeat(20)),
            item("p1", "Cooking for one", "Meal prepping on Sundays saves time."),
            item("p2", "Night trains", "Sleeping on a train is better than flying."),
        ],
    }
}

#[test]
fn four_prompts_render_their_parts() {
    let t = Templates::builtin();
    let ex = example();
    let items: Vec<&ProfileItem> = ex.profile.iter().collect();
    let plain = t.plain(&ex, &items[..2]);
    assert!(plain.contains(&ex.input));
    assert!(plain.contains("[1] Summary: Learning to climb") && plain.contains("[2] Summary: Cooking for one"));
    assert!(!plain.contains("Night trains"));
    assert!(!plain.contains(&ex.output), "the plain prompt must not leak y");

    let ri = t.reasoning_input(&ex, &items);
    assert!(ri.contains(RESPONSE_SEPARATOR) && ri.contains("writing style") && ri.contains(&ex.input));
    assert!(!ri.contains(&ex.output));

    let rg = t.reasoning_generation(&ex, &items);
    for part in
        [ex.input.as_str(), ex.output.as_str(), "Night trains", "bullet points", "preferences", "background knowledge"]
    {
        assert!(rg.contains(part), "missing {part:?}");
    }

    let j = t.judge("the request", "the reference", "the candidate");
    for part in ["the request", "the reference", "the candidate", "10 -", "0 -", "single integer"] {
        assert!(j.contains(part), "missing {part:?}");
    }
    for score in 0..=10 {
        assert!(j.contains(&format!("\n{score} - ")), "no criterion for {score}");
    }

    assert!(t.plain(&ex, &[]).contains(EMPTY_PROFILE));
}

#[test]
fn reasoning_target_round_trips_through_the_parser() {
    let t = Templates::builtin();
    let target = t.reasoning_target("- likes climbing\n- short sentences", "I moved for a job.");
    let p = parse_output(&target);
    assert!(p.had_separator);
    assert_eq!(p.reasoning.as_deref(), Some("- likes climbing\n- short sentences"));
    assert_eq!(p.response, "I moved for a job.");
}

#[test]
fn parser_rules_for_missing_repeated_and_inline_separators() {
    let p = parse_output("  just a response, no reasoning  ");
    assert_eq!(
        p,
        restpg::prompt::ParsedOutput {
            reasoning: None,
            response: "just a response, no reasoning".into(),
            had_separator: false
        }
    );

    // Case-insensitive, colon optional, text on the separator line kept.
    let p = parse_output("- bullet\n  ### RESPONSE answer starts here\nand goes on");
    assert!(p.had_separator);
    assert_eq!(p.reasoning.as_deref(), Some("- bullet"));
    assert_eq!(p.response, "answer starts here\nand goes on");

    // Split at the first separator; later ones stay in the response.
    let p = parse_output("r\n### Response:\nfirst\n### Response:\nsecond");
    assert_eq!(p.reasoning.as_deref(), Some("r"));
    assert_eq!(p.response, "first\n### Response:\nsecond");

    // The marker inside a line is not a separator.
    let p = parse_output("see ### Response: here");
    assert!(!p.had_separator);

    // Empty reasoning is still a found separator.
    let p = parse_output("### Response:\nonly response");
    assert_eq!(p.reasoning.as_deref(), Some(""));
    assert_eq!(p.response, "only response");
}

#[test]
fn edited_templates_are_checked_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Templates::write_builtin(dir).unwrap();
    let loaded = Templates::load(dir).unwrap();
    let ex = example();
    let items: Vec<&ProfileItem> = ex.profile.iter().collect();
    assert_eq!(loaded.plain(&ex, &items), Templates::builtin().plain(&ex, &items));

    std::fs::write(dir.join("plain.txt"), "Profile: {profile}\nAsk: {input}\nAlso {user_name}").unwrap();
    let err = Templates::load(dir).unwrap_err();
    assert!(matches!(&err, TemplateError::Unknown { name, .. } if name == "user_name"), "{err}");
    assert!(err.to_string().contains("plain.txt: unknown placeholder {user_name}"), "{err}");

    std::fs::write(dir.join("plain.txt"), "Profile: {profile}\nno request here").unwrap();
    let err = Templates::load(dir).unwrap_err().to_string();
    assert!(err.contains("plain.txt: missing placeholder {input}"), "{err}");

    std::fs::write(dir.join("plain.txt"), "{profile} {input} {{literal}} and a stray }").unwrap();
    let err = Templates::load(dir).unwrap_err().to_string();
    assert!(err.contains("plain.txt: byte") && err.contains("`}` without an opening `{`"), "{err}");

    std::fs::write(dir.join("plain.txt"), "{profile} {{literal}} {input}").unwrap();
    let t = Templates::load(dir).unwrap();
    assert!(t.plain(&ex, &[]).contains("{literal}"));

    std::fs::write(dir.join("profile-review-writing.txt"), "{overall} {summary} {reviewText}").unwrap();
    let err = Templates::load(dir).unwrap_err().to_string();
    assert!(err.contains("profile-review-writing.txt: missing placeholder {description}"), "{err}");

    std::fs::remove_file(dir.join("judge.txt")).unwrap();
    let err = Templates::load(dir).unwrap_err().to_string();
    assert!(err.contains("judge.txt"), "{err}");
}

#[test]
fn budget_trims_profile_never_the_request() {
    let t = Templates::builtin();
    let ex = example();
    let items: Vec<&ProfileItem> = ex.profile.iter().collect();
    let words = |s: &str| s.split_whitespace().count();
    let full = t.fit(PromptKind::Plain, &ex, &items, 100_000, &words);
    assert_eq!((full.dropped, full.trimmed, full.over_budget), (0, false, false));
    assert_eq!(full.prompt, t.plain(&ex, &items));

    // Room for the request and part of the first (long) item only.
    let base = words(&t.plain(&ex, &[]));
    let budget = base + 60;
    let fit = t.fit(PromptKind::Plain, &ex, &items, budget, &words);
    assert!(fit.tokens <= budget, "{} > {budget}", fit.tokens);
    assert!(fit.trimmed);
    assert_eq!(fit.items.len(), 1);
    assert_eq!(fit.dropped, 2);
    assert!(fit.prompt.contains(&ex.input));
    assert!(fit.items[0].field("content").ends_with('…'));
    // The trimmed item uses the budget well (within one item header of it).
    assert!(fit.tokens + 12 >= budget, "{} tokens of {budget}", fit.tokens);

    // A budget below the fixed part: the request is returned whole.
    let over = t.fit(PromptKind::ReasoningGeneration, &ex, &items, 5, &words);
    assert!(over.over_budget);
    assert!(over.items.is_empty());
    assert!(over.prompt.contains(&ex.input) && over.prompt.contains(&ex.output));
}
