//! One example (x, y, P) and its profile items, and the checks every
//! example passes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Task;

/// One document of a user's profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileItem {
    /// Id, unique within its example. Taken from the record's `id` when
    /// present, else `"{example id}-p{index}"` (0-based index in the profile).
    pub id: String,
    /// The task's fields ([`Task::profile_fields`]) plus any extra scalar
    /// fields of the record, all as text, sorted by key.
    pub fields: BTreeMap<String, String>,
}

impl ProfileItem {
    /// The value of `field`, or `""` when absent (validated items always
    /// carry their task's fields).
    pub fn field(&self, field: &str) -> &str {
        self.fields.get(field).map(String::as_str).unwrap_or("")
    }
}

/// One example: a user, the input `x`, the expected output `y`, the profile
/// `P`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// Id, unique within a [`Dataset`] (all splits).
    pub id: String,
    /// The task this example belongs to.
    pub task: Task,
    /// The user (author) the example personalises for.
    pub user_id: String,
    /// The input prompt `x`, as LongLaMP words it.
    pub input: String,
    /// The expected output `y`: the text the user actually wrote.
    pub output: String,
    /// The user's other documents, in the source's order. Never empty.
    pub profile: Vec<ProfileItem>,
}

/// Validates one example: non-empty profile, unique profile item ids, every
/// task field present in every item.
///
/// # Errors
/// Names the profile index and field.
pub fn validate_example(e: &Example) -> anyhow::Result<()> {
    if e.profile.is_empty() {
        anyhow::bail!("field `profile` is empty");
    }
    if e.id.is_empty() {
        anyhow::bail!("field `id` is empty");
    }
    let mut ids = BTreeSet::new();
    for (i, item) in e.profile.iter().enumerate() {
        if !ids.insert(item.id.as_str()) {
            anyhow::bail!("field `profile[{i}].id`: duplicate id {:?}", item.id);
        }
        for f in e.task.profile_fields() {
            if !item.fields.contains_key(*f) {
                anyhow::bail!("missing field `profile[{i}].{f}`");
            }
        }
    }
    Ok(())
}
