//! A [`Dataset`] on disk: one JSON Lines file per split and
//! `manifest.json`, written and read back with every example validated and
//! the digest checked.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use super::{validate_example, DataError, Dataset, Example, Location, Manifest, Split, MANIFEST_FILE};

impl Dataset {
    /// Writes `train.jsonl`, `val.jsonl`, `test.jsonl` and `manifest.json`
    /// into `dir` (created if missing). Validates first. The files hold
    /// users' text: `dir` is made `0700` and every file `0600`.
    ///
    /// # Errors
    /// Invalid examples, or I/O errors naming the file.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        self.validate()?;
        store::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut counts = BTreeMap::new();
        for s in Split::ALL {
            let path = dir.join(format!("{}.jsonl", s.file_stem()));
            let mut text = String::new();
            for e in self.split(s) {
                text.push_str(&serde_json::to_string(e).with_context(|| format!("serialising {}", e.id))?);
                text.push('\n');
            }
            store::write_private_file(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            counts.insert(s.file_stem().to_string(), self.split(s).len());
        }
        let manifest = Manifest {
            format: 1,
            description: self.description.clone(),
            digest: self.digest_hex(),
            counts,
            tasks: self.tasks(),
        };
        let path = dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(&manifest)?;
        store::write_private_file(&path, (text + "\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Reads a directory written by [`Dataset::save`]: every line is parsed
    /// strictly (unknown keys are errors), every example validated, and the
    /// digest compared with `manifest.json`.
    ///
    /// # Errors
    /// [`DataError`] naming file, line and field; a digest mismatch.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let manifest_text = std::fs::read_to_string(&manifest_path)
            .map_err(|source| DataError::Io { path: manifest_path.clone(), source })?;
        let manifest: Manifest = serde_json::from_str(&manifest_text).map_err(|e| DataError::NotJson {
            path: manifest_path.clone(),
            at: Location::Line(e.line()),
            message: e.to_string(),
        })?;
        let mut examples = BTreeMap::new();
        let mut first_seen: BTreeMap<String, String> = BTreeMap::new();
        for s in Split::ALL {
            let path = dir.join(format!("{}.jsonl", s.file_stem()));
            let bytes = std::fs::read(&path).map_err(|source| DataError::Io { path: path.clone(), source })?;
            let text = super::longlamp::utf8_or_error(&path, &bytes, true)?;
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let at = Location::Line(i + 1);
                if line.trim().is_empty() {
                    continue;
                }
                let e: Example = serde_json::from_str(line).map_err(|err| {
                    let msg = err.to_string();
                    match missing_field_name(&msg) {
                        Some(field) => DataError::MissingField { path: path.clone(), at, field },
                        None => DataError::NotJson { path: path.clone(), at, message: msg },
                    }
                })?;
                if let Some(first) = first_seen.get(&e.id) {
                    return Err(DataError::DuplicateId {
                        path: path.clone(),
                        at,
                        field: "id".into(),
                        id: e.id.clone(),
                        first: first.clone(),
                    }
                    .into());
                }
                first_seen.insert(e.id.clone(), format!("{} {at}", path.display()));
                validate_example(&e).with_context(|| format!("{}: {at}", path.display()))?;
                out.push(e);
            }
            examples.insert(s, out);
        }
        // Each example was validated above, with its file and line; ids are
        // unique across the splits.
        let ds = Dataset::from_validated(manifest.description.clone(), examples);
        let actual = ds.digest_hex();
        if actual != manifest.digest {
            return Err(DataError::DigestMismatch { dir: dir.to_path_buf(), expected: manifest.digest, actual }.into());
        }
        Ok(ds)
    }
}

/// Extracts `name` from serde's "missing field `name`" message.
fn missing_field_name(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    rest.split('`').next().map(str::to_string)
}
