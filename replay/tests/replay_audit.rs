//! Given a run written through the store, when it is audited or exported,
//! then the audit agrees with the filter's own records and the export is
//! D_t in the shape other trainers read.

extern crate restpg_replay as replay;

mod common;

use common::{through_store, write_log};
use events::{Decision, Event, EventKind};
use replay::audit::{self, AuditQuery, Format, Selection};
use replay::synthetic::SyntheticRun;

fn run() -> SyntheticRun {
    SyntheticRun { inputs: 12, m: 8, cap: 2, ..SyntheticRun::default() }
}

fn query(selection: Selection) -> AuditQuery {
    AuditQuery { iteration: 1, input: None, selection }
}

#[test]
fn audit_counts_equal_the_filter_events() {
    // Given a run in a real store
    let run = run();
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), "run-a", run.events());
    let reader = store::LogReader::open(dir.path(), None).unwrap();
    let state = replay::Replay::new().fold_log(&reader).unwrap();
    // and the filter's decisions of iteration 1, counted from the store's kind index
    let mut logged = std::collections::BTreeMap::new();
    for r in reader.by_kind(EventKind::FilterDecided) {
        if let Event::FilterDecided { sample, decision, .. } = r.unwrap().payload {
            if sample.iteration == 1 {
                *logged.entry(decision.as_str()).or_insert(0usize) += 1;
            }
        }
    }
    assert!(logged.len() == 4, "the run has every kind of decision (reasoning is not required): {logged:?}");
    // When the iteration is audited
    let all = audit::audit_rows(&state, &query(Selection::All)).unwrap();
    let kept = audit::audit_rows(&state, &query(Selection::Kept)).unwrap();
    let rejected = audit::audit_rows(&state, &query(Selection::Rejected)).unwrap();
    // Then its counts are the filter's
    let count = |d: Decision| all.iter().filter(|r| r.decision == Some(d)).count();
    assert_eq!(count(Decision::Kept), logged["kept"]);
    assert_eq!(count(Decision::BelowThreshold), logged["below-threshold"]);
    assert_eq!(count(Decision::OverCap), logged["over-cap"]);
    assert_eq!(count(Decision::ZeroReward), logged["zero-reward"]);
    assert_eq!(kept.len(), logged["kept"]);
    assert_eq!(rejected.len(), logged["below-threshold"] + logged["over-cap"] + logged["zero-reward"]);
    assert_eq!(all.len(), (run.inputs * run.m) as usize);
    // and the summary adds up to the same
    let summary = audit::summarize(&state, 1, None).unwrap();
    assert_eq!(summary.len(), 2, "two tasks");
    assert_eq!(summary.iter().map(|s| s.kept).sum::<u64>() as usize, logged["kept"]);
    assert_eq!(summary.iter().map(|s| s.histogram.iter().sum::<u64>()).sum::<u64>() as usize, all.len());
    assert_eq!(state.iterations[&1].seal.as_ref().unwrap().count as usize, logged["kept"]);
}

#[test]
fn every_kept_sample_passes_tau_and_no_input_exceeds_the_cap() {
    let run = run();
    let (state, _) = through_store(run.events());
    let kept = audit::audit_rows(&state, &query(Selection::Kept)).unwrap();
    assert!(!kept.is_empty());
    let mut per_input = std::collections::BTreeMap::new();
    for r in &kept {
        assert!(r.reward.unwrap() >= r.tau.unwrap(), "{}", r.explain(0));
        *per_input.entry(r.sample.input_id.clone()).or_insert(0u32) += 1;
    }
    assert!(per_input.values().all(|&k| k <= run.cap), "{per_input:?}");
    let summary = audit::summarize(&state, 1, None).unwrap();
    assert!(summary.iter().all(|s| s.kept_max <= run.cap));
}

#[test]
fn one_sample_is_explained_in_one_line() {
    let run = run();
    let (state, _) = through_store(run.events());
    let rows = audit::audit_rows(&state, &query(Selection::All)).unwrap();
    // Given a sample below τ
    let below = rows.iter().find(|r| r.decision == Some(Decision::BelowThreshold)).unwrap();
    // When it is explained
    let line = audit::explain(&state, &below.sample).unwrap();
    // Then the line gives reward, τ, decision, reason and rank
    let expected_start = format!(
        "{}: reward {:.2} < τ 1.00 → rejected (below τ); rank {} of 8 for its input",
        below.sample,
        below.reward.unwrap(),
        below.rank.unwrap()
    );
    assert!(line.starts_with(&expected_start), "{line}");
    assert!(!line.contains('\n'));
    let over = rows.iter().find(|r| r.decision == Some(Decision::OverCap)).unwrap();
    let line = audit::explain(&state, &over.sample).unwrap();
    assert!(line.contains("≥ τ 1.00 → rejected (over the cap: 2 kept for its input)"), "{line}");
    let kept = rows.iter().find(|r| r.decision == Some(Decision::Kept)).unwrap();
    assert!(audit::explain(&state, &kept.sample).unwrap().contains("→ kept (weight 1.00)"));
    let missing = events::SampleId { iteration: 1, input_id: "nobody".into(), index: 0 };
    assert!(audit::explain(&state, &missing).unwrap_err().to_string().contains("t1/nobody/#0"));
}

#[test]
fn rows_are_written_as_table_jsonl_and_csv() {
    let run = run();
    let (state, _) = through_store(run.events());
    let input = run.input_id(3);
    let q = AuditQuery { iteration: 1, input: Some(input.clone()), selection: Selection::All };
    let rows = audit::audit_rows(&state, &q).unwrap();
    assert_eq!(rows.len(), run.m as usize);
    let render = |f| {
        let mut out = Vec::new();
        audit::write_rows(&rows, f, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let table = render(Format::Table);
    assert!(table.contains("judge (top 3)") && table.contains(&rows[0].sample.to_string()), "{table}");
    let jsonl = render(Format::Jsonl);
    let lines: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), rows.len());
    assert_eq!(lines[0]["sample"], rows[0].sample.to_string());
    assert_eq!(lines[0]["judge_distribution"].as_array().unwrap().len(), 11);
    let csv = render(Format::Csv);
    assert_eq!(csv.lines().count(), rows.len() + 1);
    assert!(csv.starts_with("sample,input_id,task,reward,"));
    let mut summary = Vec::new();
    audit::write_summary(&audit::summarize(&state, 1, Some(&input)).unwrap(), &mut summary).unwrap();
    let summary = String::from_utf8(summary).unwrap();
    assert!(summary.contains(&format!("task {}: 1 inputs, 8 samples", run.task_of(3))), "{summary}");
    assert!(summary.contains("[0.9, 1.0]"), "{summary}");
    // An input that is not there is named
    let q = AuditQuery { iteration: 1, input: Some("nobody".into()), selection: Selection::All };
    assert!(audit::audit_rows(&state, &q).unwrap_err().to_string().contains("\"nobody\""));
}

#[test]
fn every_format_spells_decisions_alike_and_ranks_from_one() {
    // Given an input whose samples were kept, dropped below τ and over the cap
    let run = run();
    let (state, records) = through_store(run.events());
    let q = AuditQuery { iteration: 1, input: None, selection: Selection::All };
    let rows = audit::audit_rows(&state, &q).unwrap();
    let render = |f| {
        let mut out = Vec::new();
        audit::write_rows(&rows, f, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    // When the rows are written as JSONL and CSV
    let jsonl: Vec<serde_json::Value> =
        render(Format::Jsonl).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let csv = render(Format::Csv);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let csv_rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    // Then both spell the decision in its kebab-case Display form and count ranks from 1,
    // the logged rank (from 0) plus one, as the table and the explanation do
    for ((row, j), c) in rows.iter().zip(&jsonl).zip(&csv_rows) {
        let d = row.decision.unwrap();
        assert!(["kept", "below-threshold", "over-cap", "zero-reward", "no-reasoning", "unfinished"]
            .contains(&d.to_string().as_str()));
        assert_eq!(j["decision"], d.to_string());
        assert_eq!(&c[col("decision")], d.to_string());
        let logged = records
            .iter()
            .find_map(|r| match &r.payload {
                Event::FilterDecided { sample, rank, .. } if *sample == row.sample => Some(*rank),
                _ => None,
            })
            .unwrap();
        assert_eq!(row.rank, Some(logged + 1));
        assert_eq!(j["rank"], logged + 1);
        assert_eq!(c[col("rank")], (logged + 1).to_string());
        assert!(row.explain(0).contains(&format!("rank {} of {}", logged + 1, row.of)), "{}", row.explain(0));
    }
    assert!(rows.iter().any(|r| r.rank == Some(1)) && rows.iter().all(|r| r.rank.unwrap() >= 1));
    let best = rows.iter().find(|r| r.rank == Some(1)).unwrap();
    let table = render(Format::Table);
    assert!(table.contains(&format!("1 of {}", best.of)), "{table}");
    for d in ["kept", "below-threshold", "over-cap"] {
        assert!(table.contains(&format!(" {d} ")), "{d}: {table}");
    }
}

#[test]
fn export_is_d_t_as_prompt_completion_weight_lines() {
    let run = run();
    let (state, _) = through_store(run.events());
    let builder = |input: &str| Some(run.prompt(input));
    // When D_1 is exported with a prompt builder
    let mut out = Vec::new();
    let n = state.export_jsonl(1, &run.completion, Some(&builder), &mut out).unwrap();
    // Then there is one line per kept sample, with the documented fields
    assert_eq!(n as u64, state.iterations[&1].seal.as_ref().unwrap().count);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), n);
    for l in &lines {
        let obj = l.as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["completion", "engine", "input_id", "prompt", "prompt_digest", "sample_id", "weight"]);
        // and the engine that drew it, as logged
        assert_eq!(l["engine"]["backend"], "tch");
        assert_eq!(l["engine"]["deterministic"], true);
        assert_eq!(l["prompt"], run.prompt(l["input_id"].as_str().unwrap()));
        assert!(l["completion"].as_str().unwrap().contains("\n\n### Response:\n"));
        assert_eq!(l["weight"], 1.0);
    }
    // Without a builder there is no prompt field
    let records = state.export_records(1, &run.completion, None).unwrap();
    assert!(records.iter().all(|r| r.prompt.is_none()));
    assert!(!serde_json::to_string(&records[0]).unwrap().contains("\"prompt\":"));
    // A builder whose prompt differs from the logged digest is refused by name
    let wrong = |input: &str| Some(format!("{input} in another template"));
    let err = state.export_records(1, &run.completion, Some(&wrong)).unwrap_err();
    assert!(err.to_string().contains("the rebuilt prompt hashes to"), "{err}");
    let none = |_: &str| None;
    assert!(matches!(state.export_records(1, &run.completion, Some(&none)), Err(replay::ExportError::NoPrompt { .. })));
}

#[test]
fn a_d_t_that_does_not_verify_is_not_exported() {
    let run = run();
    let mut events = run.events();
    let f = events.iter().position(|e| matches!(e, Event::FilterDecided { decision: Decision::Kept, .. })).unwrap();
    if let Event::FilterDecided { reward, .. } = &mut events[f] {
        *reward = 0.95;
    }
    let (state, _) = through_store(events);
    assert!(matches!(state.export_records(1, &run.completion, None), Err(replay::ExportError::Verify(_))));
}

/// A served engine as a schema-6 record names it.
fn served(deterministic: bool) -> events::EngineInfo {
    events::EngineInfo {
        backend: events::Backend::OpenAi,
        server_model: Some("Qwen/Qwen2.5-7B-Instruct".into()),
        server_version: Some("vllm 0.8.5".into()),
        url: None,
        prompt_format: Some(events::PromptFormat::Tokens),
        deterministic,
    }
}

#[test]
fn the_audit_names_each_samples_engine() {
    // Given a run whose sample #0 of one input was drawn by a served model
    // that is not deterministic, and judged by a served judge that left
    // some mass unseen
    let run = run();
    let input = run.input_id(3);
    let events: Vec<Event> = run
        .events()
        .into_iter()
        .map(|mut e| {
            match &mut e {
                Event::SampleGenerated { sample, engine, .. } if sample.input_id == input && sample.index == 0 => {
                    *engine = served(false);
                }
                Event::RewardAssigned { sample, engine, unseen_mass, .. }
                    if sample.input_id == input && sample.index == 0 =>
                {
                    (*engine, *unseen_mass) = (Some(served(true)), Some(0.02));
                }
                _ => {}
            }
            e
        })
        .collect();
    let (state, _) = through_store(events);
    // When its rows are audited
    let q = AuditQuery { iteration: 1, input: Some(input.clone()), selection: Selection::All };
    let rows = audit::audit_rows(&state, &q).unwrap();
    let served_row = rows.iter().find(|r| r.sample.index == 0).unwrap();
    let tch_row = rows.iter().find(|r| r.sample.index == 1).unwrap();
    // Then each row carries its sample's engine, the judge's and the unseen mass
    assert_eq!(served_row.engine, Some(served(false)));
    assert_eq!((served_row.judge_engine.clone(), served_row.unseen_mass), (Some(served(true)), Some(0.02)));
    assert_eq!(tch_row.engine, Some(events::EngineInfo::tch()));
    assert_eq!((tch_row.judge_engine.clone(), tch_row.unseen_mass), (Some(events::EngineInfo::tch()), None));
    assert_eq!(served_row.engine_label(), "openai Qwen/Qwen2.5-7B-Instruct");
    assert_eq!(tch_row.engine_label(), "tch");
    // in the table (backend, and the served model)
    let render = |f| {
        let mut out = Vec::new();
        audit::write_rows(&rows, f, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let table = render(Format::Table);
    assert!(table.contains("engine") && table.contains("openai Qwen/Qwen2.5-7B-Instruct"), "{table}");
    // in JSON Lines, whole
    let jsonl = render(Format::Jsonl);
    let line: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(line["engine"]["backend"], "openai");
    assert_eq!(line["engine"]["deterministic"], false);
    assert_eq!(line["judge_engine"]["server_version"], "vllm 0.8.5");
    // in CSV, as the last columns
    let csv = render(Format::Csv);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().ends_with(",engine,deterministic,judge_engine,unseen_mass"), "{csv}");
    let first = lines.next().unwrap();
    assert!(first.ends_with(",openai Qwen/Qwen2.5-7B-Instruct,false,openai Qwen/Qwen2.5-7B-Instruct,0.02"), "{first}");
    // and in the one-line explanation, with what it cannot promise
    let line = audit::explain(&state, &served_row.sample).unwrap();
    assert!(line.contains("(2.0% unseen)"), "{line}");
    assert!(line.contains("; drawn by openai Qwen/Qwen2.5-7B-Instruct (not deterministic)"), "{line}");
    assert!(line.contains("; judged by openai Qwen/Qwen2.5-7B-Instruct"), "{line}");
    let line = audit::explain(&state, &tch_row.sample).unwrap();
    assert!(line.ends_with("; drawn by tch; judged by tch"), "{line}");
}
