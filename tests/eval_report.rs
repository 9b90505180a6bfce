//! Evaluation end to end with a stand-in generator (lexical metrics on real
//! fixture text): per-task and macro means, JSON round trip, Markdown, the
//! seeded subset, and `compare` with its significance marker.

use restpg::data::Task;
use restpg::eval::{compare, evaluate, subset, EvalItem, EvalReport, EvalSettings, TextGenerator};
use restpg::lm::GenerationRequest;
use restpg::reward::Metric;

/// Returns canned texts keyed by the first prompt id, and records seeds.
struct Canned {
    texts: Vec<String>,
    seeds: Vec<(u32, u64)>,
}

impl TextGenerator for Canned {
    fn generate_texts(&mut self, reqs: &[GenerationRequest]) -> anyhow::Result<Vec<String>> {
        Ok(reqs
            .iter()
            .map(|r| {
                self.seeds.push((r.prompt_ids[0], r.seed));
                self.texts[r.prompt_ids[0] as usize].clone()
            })
            .collect())
    }
}

fn items() -> Vec<EvalItem> {
    let refs = [
        "The nightly build failed on the ARM box because of the new linker flags.",
        "Shall we meet at noon at the usual place for lunch?",
        "Clean rooms and friendly staff, but the breakfast was cold.",
        "The river flooded the lower town after three days of rain.",
        "Our paper studies personalized text generation with reasoning.",
        "We propose a method that trains a model on its own best outputs.",
    ];
    refs.iter()
        .enumerate()
        .map(|(i, r)| EvalItem {
            id: format!("ex{i}"),
            task: if i < 3 { Task::EmailCompletion } else { Task::TopicWriting },
            prompt_ids: vec![i as u32, 7, 7],
            expected: r.to_string(),
            input: format!("input {i}"),
        })
        .collect()
}

fn settings() -> EvalSettings {
    EvalSettings { metrics: vec![Metric::Rouge1, Metric::RougeL], batch_size: 4, ..EvalSettings::default() }
}

#[test]
fn report_means_markdown_json_and_comparison() {
    let items = items();
    // System A copies most references (high overlap); B writes unrelated text.
    let mut a_texts: Vec<String> = items.iter().map(|i| i.expected.clone()).collect();
    a_texts[1] = "Reasoning: they like noon.\n### Response:\n".into(); // empty response → 0
    let b_texts: Vec<String> =
        (0..items.len()).map(|i| format!("Completely unrelated words number {i} here.")).collect();
    let mut ga = Canned { texts: a_texts, seeds: vec![] };
    let mut gb = Canned { texts: b_texts, seeds: vec![] };
    let ra = evaluate(&mut ga, &items, &settings(), "A", "test", None, &restpg::reward::Scorers::default()).unwrap();
    let rb = evaluate(&mut gb, &items, &settings(), "B", "test", None, &restpg::reward::Scorers::default()).unwrap();
    assert_eq!(ra.per_task["email-completion"].n, 3);
    assert_eq!(ra.per_task["email-completion"].empty_responses, 1);
    let ex1 = ra.examples.iter().find(|e| e.id == "ex1").unwrap();
    assert!(ex1.empty_response && ex1.scores[&Metric::Rouge1] == 0.0);
    // Email: two perfect copies and one empty → mean 2/3; topic: 1.0.
    assert!((ra.per_task["email-completion"].means[&Metric::Rouge1] - 2.0 / 3.0).abs() < 1e-12);
    assert!((ra.macro_average[&Metric::Rouge1] - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
    // Seeds depend on the id only (same across systems, batch sizes and runs).
    assert_eq!(ga.seeds, gb.seeds);
    let json = serde_json::to_string(&ra).unwrap();
    let back: EvalReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ra);
    assert!(json.contains("\"rouge-1\""));
    let md = ra.to_markdown();
    assert!(
        md.contains("| email-completion | 3 |")
            && md.contains("macro average")
            && md.contains("Empty responses (scored 0): 1")
    );
    let c = compare(&ra, &rb).unwrap();
    let cell = c.cells.iter().find(|c| c.task == "topic-writing" && c.metric == Metric::Rouge1).unwrap();
    assert!(cell.mean_a > cell.mean_b);
    assert!(cell.test.as_ref().unwrap().p < 0.05, "{cell:?}");
    let md = c.to_markdown();
    assert!(md.contains('†') && md.contains("| macro | rouge-1 |"), "{md}");
    // Different example sets are refused, naming the ids.
    let mut short = rb.clone();
    short.examples.pop();
    let e = compare(&ra, &short).unwrap_err().to_string();
    assert!(e.contains("ex5"), "{e}");
    // Reports made with other settings are refused, naming each difference.
    let mut hot = rb.clone();
    hot.settings.sampling.temperature = 0.7;
    hot.settings.seed = 9;
    let e = compare(&ra, &hot).unwrap_err().to_string();
    assert!(e.contains("temperature: 0.1 vs 0.7") && e.contains("seed: 0 vs 9"), "{e}");
    // and so are reports of which only one records its checkpoint and prompt settings
    let provenance = restpg::eval::Provenance {
        checkpoint: "ab".repeat(32),
        run_id: None,
        prompt: "plain".into(),
        retriever: "bm25".into(),
        k: 5,
        max_input_tokens: 5120,
        judge: "judge.gguf".into(),
        judge_rule: "argmax".into(),
        max_per_task: 1024,
        policy_engine: "tch".into(),
        judge_engine: "tch".into(),
    };
    let mut with = rb.clone();
    with.provenance = Some(provenance.clone());
    assert!(compare(&ra, &with).unwrap_err().to_string().contains("provenance"));
    // while equal settings compare, labelled by system and checkpoint
    let mut a2 = ra.clone();
    a2.provenance = Some(provenance.clone());
    let c = compare(&a2, &with).unwrap();
    assert_eq!((c.system_a.as_str(), c.system_b.as_str()), ("A@abababab", "B@abababab"));
    let mut other_k = with.clone();
    other_k.provenance = Some(restpg::eval::Provenance { k: 2, ..provenance.clone() });
    assert!(compare(&a2, &other_k).unwrap_err().to_string().contains("k: 5 vs 2"));
    // and so are generations from another engine
    let mut served = with.clone();
    let on_server = "openai llama_cpp 0.3.36, text prompts";
    served.provenance = Some(restpg::eval::Provenance { policy_engine: on_server.into(), ..provenance.clone() });
    let e = compare(&a2, &served).unwrap_err().to_string();
    assert!(e.contains(&format!("policy_engine: tch vs {on_server}")), "{e}");
    // A report written before engines were recorded read them as tch.
    let mut old = serde_json::to_value(&with).unwrap();
    let p = old["provenance"].as_object_mut().unwrap();
    p.remove("policy_engine");
    p.remove("judge_engine");
    let old: restpg::eval::EvalReport = serde_json::from_value(old).unwrap();
    assert_eq!(old.provenance.as_ref().unwrap().judge_engine, "tch");
    assert!(compare(&a2, &old).is_ok());
}

#[test]
fn subset_is_seeded_capped_per_task_and_ordered() {
    let mut many = Vec::new();
    for i in 0..50 {
        many.push(EvalItem {
            id: format!("e{i}"),
            task: if i % 2 == 0 { Task::EmailCompletion } else { Task::ReviewWriting },
            prompt_ids: vec![1],
            expected: String::new(),
            input: String::new(),
        });
    }
    let a = subset(&many, 10, 3);
    let b = subset(&many, 10, 3);
    let c = subset(&many, 10, 4);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.iter().filter(|e| e.task == Task::EmailCompletion).count(), 10);
    assert_eq!(a.len(), 20);
    let pos: Vec<usize> = a.iter().map(|e| e.id[1..].parse().unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "original order kept");
    assert_eq!(subset(&many, 1000, 3).len(), 50);
}

#[test]
fn decoding_settings_from_f32_configs_print_in_their_shortest_form() {
    // Given a report whose settings came from a run configuration's f32
    // temperature and top-p, widened to f64 (as the pipeline's evaluator does)
    let items = items();
    let mut settings = settings();
    settings.sampling.temperature = f64::from(0.1f32);
    settings.sampling.top_p = f64::from(0.95f32);
    let mut gen = Canned { texts: items.iter().map(|i| i.expected.clone()).collect(), seeds: vec![] };
    let report = evaluate(&mut gen, &items, &settings, "A", "test", None, &restpg::reward::Scorers::default()).unwrap();
    // When it is written as Markdown
    let md = report.to_markdown();
    // Then they print as written in the configuration, not as 0.10000000149011612
    assert!(md.contains("Decoding: temperature 0.1, top-p 0.95, "), "{md}");
    assert!(!md.contains("0.1000000"), "{md}");
    // and a value that is no f32 keeps its f64 digits
    assert_eq!(restpg::eval::shortest(0.1), "0.1");
    assert_eq!(restpg::eval::shortest(0.123456789012), "0.123456789012");
}
