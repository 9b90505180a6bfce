//! Retrieval: BM25 ranks a planted relevant document first; the real MiniLM
//! ranks a paraphrase above unrelated documents and caches profile
//! embeddings; per-task query and document texts follow LongLaMP.

use std::collections::BTreeMap;

use restpg::data::{Example, ProfileItem, Task};
use restpg::retrieve::{document_text, query_text, Bm25, DenseRetriever, Retriever, DEFAULT_K};

fn item(id: &str, fields: &[(&str, &str)]) -> ProfileItem {
    ProfileItem {
        id: id.into(),
        fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }
}

fn topic_example(input: &str, contents: &[&str]) -> Example {
    Example {
        id: "e1".into(),
        task: Task::TopicWriting,
        user_id: "u1".into(),
        input: input.into(),
        output: "irrelevant".into(),
        profile: contents
            .iter()
            .enumerate()
            .map(|(i, c)| item(&format!("p{i}"), &[("summary", "a post"), ("content", c)]))
            .collect(),
    }
}

#[test]
fn bm25_ranks_planted_document_first() {
    // Tokens are whitespace-split with case and punctuation kept, as in
    // LongLaMP (`str.split()`): the planted document shares the bare tokens
    // `sourdough` and `starter` with the query, the filler shares only
    // common words (`the`, `for`, `my`).
    let filler = [
        "I went to the market and bought apples and bread for the week.",
        "The weather was cold so we stayed inside and watched a film.",
        "My cat sleeps on the sofa most of the afternoon.",
        "We painted the kitchen a pale shade of green last spring.",
        "The train was late again this morning because of the snow.",
        "Our team won the football match on Saturday by two goals.",
    ];
    for planted_at in [0, 3, 6] {
        let mut docs: Vec<&str> = filler.to_vec();
        docs.insert(planted_at, "Tuning sourdough starter feeding ratios and hydration levels.");
        let ex = topic_example(
            "Write the full post for the following summary: \"Feeding my sourdough starter every day\"",
            &docs,
        );
        let ranked = Bm25::default().retrieve(&ex, DEFAULT_K).unwrap();
        assert_eq!(ranked.len(), 5);
        assert_eq!(ranked[0].0, planted_at, "{ranked:?}");
        assert!(ranked[0].1 > ranked[1].1);
        // Scores are sorted best first.
        assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}

#[test]
fn bm25_k_larger_than_profile_and_ties_keep_profile_order() {
    let ex = topic_example("nothing matches", &["alpha", "beta", "gamma"]);
    let ranked = Bm25::default().retrieve(&ex, 10).unwrap();
    assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(ranked.iter().all(|r| r.1 == 0.0));
}

#[test]
fn query_and_document_texts_follow_longlamp() {
    let mut ex = topic_example("Write about \"x\"", &["c"]);
    assert_eq!(query_text(&ex), "Write about \"x\"");
    ex.task = Task::AbstractGeneration;
    ex.input = "Generate an abstract for the title \"T\" using the following items: 1. a 2. b".into();
    assert_eq!(query_text(&ex), "1. a 2. b");
    ex.task = Task::EmailCompletion;
    ex.input = "Complete the email. Subject: \"Re: lunch\". The email begins: \"Hi\"".into();
    assert_eq!(query_text(&ex), "\"Re: lunch\". The email begins: \"Hi\"");
    let r = item("r", &[("overall", "5.0"), ("summary", "S"), ("description", "D"), ("reviewText", "R")]);
    assert_eq!(document_text(Task::ReviewWriting, &r), "5.0 S D R");
    let a = item("a", &[("title", "T"), ("abstract", "A")]);
    assert_eq!(document_text(Task::AbstractGeneration, &a), "T A");
    let e = item("e", &[("subject", "S"), ("text", "body")]);
    assert_eq!(document_text(Task::EmailCompletion, &e), "body");
}

/// The real all-MiniLM-L6-v2 from the set-up.
#[test]
fn dense_minilm_ranks_paraphrase_above_unrelated_and_caches() {
    let mut r = DenseRetriever::minilm().expect("MiniLM from scripts/setup.sh");
    // Unit-norm embeddings of width 384.
    let embs =
        r.encoder().encode(&["A short sentence.", "Another, rather longer, sentence about cooking pasta."]).unwrap();
    assert_eq!(embs[0].len(), 384);
    for e in &embs {
        let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let ex = topic_example(
        "How can I make my laptop battery last longer?",
        &[
            "The recipe needs two cups of flour and a pinch of salt.",
            "Ways to extend the battery life of a notebook computer: dim the screen and close background apps.",
            "The football season starts in August with a home game.",
        ],
    );
    let ranked = r.retrieve(&ex, 3).unwrap();
    assert_eq!(ranked[0].0, 1, "{ranked:?}");
    assert!(ranked[0].1 > ranked[1].1 + 0.1, "paraphrase not clearly ahead: {ranked:?}");
    assert_eq!(r.cache_stats(), (0, 3));
    // The second query over the same profile reuses all three embeddings.
    let again = r.retrieve(&ex, 3).unwrap();
    assert_eq!(again, ranked);
    assert_eq!(r.cache_stats(), (3, 3));
    // Padding does not change an embedding: a text alone and in a batch
    // with a longer one encode the same.
    let alone = r.encoder().encode(&["A short sentence."]).unwrap();
    let diff: f32 = alone[0].iter().zip(&embs[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(diff < 1e-4, "padding changed the embedding by {diff}");
    assert!(r.name().starts_with("dense(minilm"), "{}", r.name());
}
