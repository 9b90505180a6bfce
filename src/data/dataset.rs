//! [`Dataset`]: validated examples per split, and its digest.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;

use super::{validate_example, Example, Split, Task};

/// A data set: examples per split, possibly of several tasks.
///
/// Always validated ([`Dataset::validate`]): the examples are private, and
/// every way to make a data set with examples ([`Dataset::from_splits`],
/// [`Dataset::load`], [`Dataset::from_longlamp_dir`]) checks them first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataset {
    /// Examples per split. Every split key is present after [`Dataset::load`],
    /// [`Dataset::new`] and [`Dataset::from_splits`] (possibly with an empty
    /// vector).
    examples: BTreeMap<Split, Vec<Example>>,
    /// Where the data came from (saved in the manifest; not part of the
    /// digest).
    pub description: String,
}

impl Dataset {
    /// An empty data set with all three splits present.
    pub fn new(description: impl Into<String>) -> Self {
        Self::from_validated(description, BTreeMap::new())
    }

    /// A data set of `examples` per split (a split without an entry is
    /// empty), validated.
    ///
    /// # Errors
    /// As [`Dataset::validate`], naming the split, example and field.
    pub fn from_splits(
        description: impl Into<String>,
        examples: BTreeMap<Split, Vec<Example>>,
    ) -> anyhow::Result<Self> {
        let ds = Self::from_validated(description, examples);
        ds.validate()?;
        Ok(ds)
    }

    /// A data set of examples the caller has already checked as
    /// [`Dataset::validate`] does (the loaders, which report each failure
    /// with its file and line).
    pub(super) fn from_validated(description: impl Into<String>, mut examples: BTreeMap<Split, Vec<Example>>) -> Self {
        for s in Split::ALL {
            examples.entry(s).or_default();
        }
        Dataset { examples, description: description.into() }
    }

    /// The examples per split, giving up the data set (to merge several).
    pub fn into_splits(self) -> BTreeMap<Split, Vec<Example>> {
        self.examples
    }

    /// The examples of split `s` (empty when absent).
    pub fn split(&self, s: Split) -> &[Example] {
        self.examples.get(&s).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Tasks present in any split, sorted.
    pub fn tasks(&self) -> Vec<Task> {
        let set: BTreeSet<Task> = self.examples.values().flatten().map(|e| e.task).collect();
        set.into_iter().collect()
    }

    /// All examples of all splits with their split, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = (Split, &Example)> {
        self.examples.iter().flat_map(|(s, v)| v.iter().map(move |e| (*s, e)))
    }

    /// Looks an example up by id in any split.
    pub fn find(&self, id: &str) -> Option<(Split, &Example)> {
        self.iter().find(|(_, e)| e.id == id)
    }

    /// Blake3 digest of the canonical JSON of all examples: the splits in
    /// `Train, Val, Test` order, each as its split name followed by its
    /// examples in stored order, serialised with serde_json (struct fields in
    /// declaration order, profile fields sorted). Two data sets with the same
    /// digest hold the same examples in the same order.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        for s in Split::ALL {
            let examples = self.split(s);
            // Length-prefix each piece so that split boundaries cannot shift.
            hasher.update(s.file_stem().as_bytes());
            hasher.update(&(examples.len() as u64).to_le_bytes());
            for e in examples {
                // Serialising plain structs of strings cannot fail.
                let bytes = serde_json::to_vec(e).unwrap_or_default();
                hasher.update(&(bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
        }
        *hasher.finalize().as_bytes()
    }

    /// [`Dataset::digest`] as lowercase hex.
    pub fn digest_hex(&self) -> String {
        blake3::Hash::from(self.digest()).to_hex().to_string()
    }

    /// Checks the invariants every data set keeps: example ids unique across
    /// splits, a user in only one split per task (user-based splits), non-empty
    /// profiles with unique item ids and the task's fields present.
    ///
    /// # Errors
    /// A message naming the split, example and field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut ids: BTreeMap<&str, Split> = BTreeMap::new();
        for (s, e) in self.iter() {
            if let Some(first) = ids.insert(&e.id, s) {
                anyhow::bail!(
                    "{}: example {:?}: duplicate example id (also in {})",
                    s.file_stem(),
                    e.id,
                    first.file_stem()
                );
            }
            validate_example(e).with_context(|| format!("{}: example {:?}", s.file_stem(), e.id))?;
        }
        Ok(())
    }

    /// Checks that no user of a task appears in two splits.
    ///
    /// # Errors
    /// Names the task, user and both splits.
    pub fn check_user_disjoint(&self) -> anyhow::Result<()> {
        let mut seen: BTreeMap<(Task, &str), Split> = BTreeMap::new();
        for (s, e) in self.iter() {
            if let Some(prev) = seen.insert((e.task, e.user_id.as_str()), s) {
                if prev != s {
                    anyhow::bail!(
                        "task {}: user {:?} is in both {} and {}",
                        e.task,
                        e.user_id,
                        prev.file_stem(),
                        s.file_stem()
                    );
                }
            }
        }
        Ok(())
    }
}
