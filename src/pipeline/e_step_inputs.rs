//! Which training inputs each E-step samples when `em.inputs_per_task`
//! limits them: per iteration and task, the inputs ranked by a seeded
//! blake3 hash of (seed, iteration, input id), the first N kept. The choice
//! is a pure function of the run's seed and data, so a resumed run, a
//! replay and a retrain see the same inputs without logging the choice;
//! iterations draw different inputs, so T iterations cover up to T · N
//! users of each task.

use std::collections::BTreeMap;

use crate::data::{Dataset, Split, Task};

/// The E-step inputs of iterations 1..=`iterations`: entry `t − 1` holds,
/// for each task in order, the first `per_task` training inputs of that task
/// by [`rank`] (all of them when the task has fewer), each task's in rank
/// order. `per_task` = 0 gives an empty list: every training input in every
/// iteration (REST-PG Algorithm 1).
pub fn e_step_inputs(dataset: &Dataset, seed: u64, iterations: u32, per_task: usize) -> Vec<Vec<String>> {
    if per_task == 0 {
        return Vec::new();
    }
    let mut by_task: BTreeMap<Task, Vec<&str>> = BTreeMap::new();
    for ex in dataset.split(Split::Train) {
        by_task.entry(ex.task).or_default().push(ex.id.as_str());
    }
    (1..=iterations)
        .map(|t| {
            let mut chosen = Vec::new();
            for ids in by_task.values() {
                let mut ranked: Vec<([u8; 32], &str)> = ids.iter().map(|id| (rank(seed, t, id), *id)).collect();
                ranked.sort();
                chosen.extend(ranked.into_iter().take(per_task).map(|(_, id)| id.to_owned()));
            }
            chosen
        })
        .collect()
}

/// The rank of input `id` in iteration `t`: blake3 over a domain tag, the
/// seed and t (little-endian) and the id.
fn rank(seed: u64, t: u32, id: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"restpg-e-step-inputs");
    h.update(&seed.to_le_bytes());
    h.update(&t.to_le_bytes());
    h.update(id.as_bytes());
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::data::{Example, ProfileItem};

    fn dataset() -> Dataset {
        let mut examples = BTreeMap::new();
        let mut train = Vec::new();
        for (task, n) in [(Task::EmailCompletion, 7), (Task::AbstractGeneration, 2)] {
            for i in 0..n {
                train.push(Example {
                    id: format!("{task}-u{i}"),
                    task,
                    user_id: format!("{task}-u{i}"),
                    input: "x".into(),
                    output: "y".into(),
                    profile: vec![ProfileItem {
                        id: format!("p{i}"),
                        fields: [("subject", "s"), ("text", "t"), ("title", "s"), ("abstract", "t")]
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect(),
                    }],
                });
            }
        }
        examples.insert(Split::Train, train);
        Dataset::from_splits("test", examples).unwrap()
    }

    #[test]
    fn n_per_task_each_iteration_seeded_and_different_across_iterations() {
        let ds = dataset();
        assert!(e_step_inputs(&ds, 0, 2, 0).is_empty());
        let a = e_step_inputs(&ds, 0, 3, 3);
        assert_eq!(a, e_step_inputs(&ds, 0, 3, 3));
        assert_eq!(a.len(), 3);
        for ids in &a {
            let email = ids.iter().filter(|i| i.starts_with("email")).count();
            // 3 of 7 e-mail users; the 2 abstract users both, as the task has fewer.
            assert_eq!((email, ids.len() - email), (3, 2), "{ids:?}");
            assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
        }
        assert_ne!(a[0], a[1], "iterations draw different inputs");
        assert_ne!(a, e_step_inputs(&ds, 1, 3, 3), "the seed changes the choice");
    }
}
