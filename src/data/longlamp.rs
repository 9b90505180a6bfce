//! Reading the published LongLaMP layout (JSON array, JSON Lines, Parquet).
//!
//! Every format is first turned into `(Location, serde_json::Value)` records;
//! one validator ([`record_to_example`]) then builds [`Example`]s from them.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

use super::{DataError, Dataset, Example, Location, ProfileItem, Split, Task};

/// Options of [`load_longlamp_with`].
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Skip records that fail validation instead of stopping at the first
    /// one; every skipped record is listed in the [`LoadReport`]. Errors that
    /// concern the whole file (unreadable file, a JSON array that does not
    /// parse, a broken Parquet footer) still stop the load.
    pub skip_invalid: bool,
}

/// One record skipped under [`LoadOptions::skip_invalid`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedRecord {
    /// The error, naming file, location and field.
    pub reason: String,
}

/// What a load read, kept and skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Records seen (non-blank lines, array elements, Parquet rows).
    pub records: usize,
    /// Examples returned.
    pub loaded: usize,
    /// Records skipped, with the reason (empty unless `skip_invalid`).
    pub skipped: Vec<SkippedRecord>,
}

impl LoadReport {
    /// Adds another report's counts and skips to this one.
    pub fn merge(&mut self, other: LoadReport) {
        self.records += other.records;
        self.loaded += other.loaded;
        self.skipped.extend(other.skipped);
    }
}

/// Reads one LongLaMP file of `task`: a `.json` file holding a top-level
/// array (or, if it does not start with `[`, JSON Lines), a `.jsonl`/`.ndjson`
/// file, or a `.parquet` file as the Hugging Face conversion writes it
/// (columns `input`, `output`, `profile` as a list of structs, plus the
/// config's id columns). Stops at the first invalid record.
///
/// # Errors
/// [`DataError`] naming file, line/record/row and field: not UTF-8, not JSON,
/// a missing or mistyped field, an empty profile, a duplicate example or
/// profile item id.
pub fn load_longlamp(path: &Path, task: Task) -> anyhow::Result<Vec<Example>> {
    Ok(load_longlamp_with(path, task, &LoadOptions::default())?.0)
}

/// [`load_longlamp`] with options; returns the examples and a report of what
/// was read and skipped.
///
/// Record ids: the record's `id` (string or number) when present, else
/// `"{file stem}-{n}"` with `n` the 1-based record number. User ids: the first
/// of `user_id`, `userId`, `reviewerId`, `author`, `name` present, else the
/// example id (user-based LongLaMP configs hold one example per user).
///
/// # Errors
/// As [`load_longlamp`]; with `skip_invalid` only file-level errors.
pub fn load_longlamp_with(path: &Path, task: Task, opts: &LoadOptions) -> anyhow::Result<(Vec<Example>, LoadReport)> {
    let ext = extension(path);
    let records = match ext.as_str() {
        "parquet" => parquet_records(path)?,
        "jsonl" | "ndjson" | "json" => text_records(path, &ext, &read(path)?)?,
        _ => return Err(DataError::UnknownFormat { path: path.to_path_buf() }.into()),
    };
    build_examples(path, records, task, opts)
}

/// The file's extension in lower case (`""` when it has none): it picks the
/// format.
fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// [`load_longlamp_with`] for the text of a JSON or JSON Lines file held in
/// memory: `path` only names the source in errors and gives the record ids'
/// stem, and its extension picks the format (`.json`, `.jsonl`, `.ndjson`).
///
/// # Errors
/// As [`load_longlamp_with`]; [`DataError::UnknownFormat`] for any other
/// extension (Parquet is read from a file).
pub fn parse_longlamp_with(
    path: &Path,
    bytes: &[u8],
    task: Task,
    opts: &LoadOptions,
) -> anyhow::Result<(Vec<Example>, LoadReport)> {
    let ext = extension(path);
    if !matches!(ext.as_str(), "jsonl" | "ndjson" | "json") {
        return Err(DataError::UnknownFormat { path: path.to_path_buf() }.into());
    }
    let records = text_records(path, &ext, bytes)?;
    build_examples(path, records, task, opts)
}

/// Each record's location with its parsed value or why it did not parse.
type Records = Vec<(Location, Result<Value, DataError>)>;

/// The records of a `.json` (array, or JSON Lines when it does not start
/// with `[`) or `.jsonl`/`.ndjson` file's bytes.
fn text_records(path: &Path, ext: &str, bytes: &[u8]) -> Result<Records, DataError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if ext == "json" && first == Some(b'[') {
        json_array_records(path, bytes)
    } else {
        Ok(jsonl_records_from(path, bytes))
    }
}

/// Validates `records` into examples, refusing (or, with `skip_invalid`,
/// skipping) invalid records and duplicate ids.
fn build_examples(
    path: &Path,
    records: Records,
    task: Task,
    opts: &LoadOptions,
) -> anyhow::Result<(Vec<Example>, LoadReport)> {
    if records.is_empty() {
        return Err(DataError::NoRecords { path: path.to_path_buf() }.into());
    }
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.split('.').next().unwrap_or(n).to_string())
        .unwrap_or_else(|| "record".into());
    let mut report = LoadReport { records: records.len(), ..LoadReport::default() };
    let mut out = Vec::with_capacity(records.len());
    let mut first_seen: HashMap<String, Location> = HashMap::new();
    for (ordinal, (at, value)) in records.into_iter().enumerate() {
        let result = value.and_then(|v| record_to_example(&v, task, path, at, &format!("{stem}-{}", ordinal + 1)));
        let result = result.and_then(|e| match first_seen.get(&e.id) {
            Some(first) => Err(DataError::DuplicateId {
                path: path.to_path_buf(),
                at,
                field: "id".into(),
                id: e.id.clone(),
                first: first.to_string(),
            }),
            None => Ok(e),
        });
        match result {
            Ok(e) => {
                first_seen.insert(e.id.clone(), at);
                out.push(e);
            }
            Err(err) if opts.skip_invalid => report.skipped.push(SkippedRecord { reason: err.to_string() }),
            Err(err) => return Err(err.into()),
        }
    }
    report.loaded = out.len();
    Ok((out, report))
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}

/// Decodes `bytes` as UTF-8 or names the line of the first bad byte
/// (`lines`: report as [`Location::Line`], else as record 1 of the file).
pub(crate) fn utf8_or_error<'a>(path: &Path, bytes: &'a [u8], lines: bool) -> Result<&'a str, DataError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let byte = e.valid_up_to();
        let line = bytes[..byte].iter().filter(|b| **b == b'\n').count() + 1;
        DataError::NotUtf8 {
            path: path.to_path_buf(),
            at: if lines { Location::Line(line) } else { Location::Record(1) },
            byte,
        }
    })
}

/// One record per non-blank line; each line is decoded and parsed on its
/// own so that `skip_invalid` can skip exactly the bad line.
fn jsonl_records_from(path: &Path, bytes: &[u8]) -> Records {
    let mut out = Vec::new();
    let mut offset = 0usize;
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let at = Location::Line(i + 1);
        let line_start = offset;
        offset += raw.len() + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let value = match std::str::from_utf8(raw) {
            Err(e) => Err(DataError::NotUtf8 { path: path.to_path_buf(), at, byte: line_start + e.valid_up_to() }),
            Ok(text) => serde_json::from_str::<Value>(text).map_err(|e| DataError::NotJson {
                path: path.to_path_buf(),
                at,
                message: e.to_string(),
            }),
        };
        out.push((at, value));
    }
    out
}

fn json_array_records(path: &Path, bytes: &[u8]) -> Result<Records, DataError> {
    let text = utf8_or_error(path, bytes, true)?;
    let value: Value = serde_json::from_str(text).map_err(|e| DataError::NotJson {
        path: path.to_path_buf(),
        at: Location::Line(e.line()),
        message: e.to_string(),
    })?;
    match value {
        Value::Array(items) => {
            Ok(items.into_iter().enumerate().map(|(i, v)| (Location::Record(i + 1), Ok(v))).collect())
        }
        other => Err(DataError::WrongType {
            path: path.to_path_buf(),
            at: Location::Record(1),
            field: "(top level)".into(),
            expected: "an array of examples",
            found: abbreviate(&other),
        }),
    }
}

fn parquet_records(path: &Path) -> Result<Records, DataError> {
    let file = File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let pq_err =
        |e: parquet::errors::ParquetError| DataError::Parquet { path: path.to_path_buf(), message: e.to_string() };
    let reader = SerializedFileReader::new(file).map_err(pq_err)?;
    let rows = reader.get_row_iter(None).map_err(pq_err)?;
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        let at = Location::Row(i + 1);
        // A row that fails to decode means a corrupt page: stop, whatever
        // `skip_invalid` says, since later rows of the page are unreliable.
        let row = row.map_err(|e| DataError::Parquet { path: path.to_path_buf(), message: format!("{at}: {e}") })?;
        out.push((at, Ok(row.to_json_value())));
    }
    Ok(out)
}

/// A short rendering of a JSON value for error messages.
fn abbreviate(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let mut text = v.to_string();
    if text.len() > 40 {
        let mut cut = 40;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    format!("{kind} ({text})")
}

/// A scalar as text: strings as they are, numbers and booleans as their
/// JSON text; `None` for null, arrays and objects.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

struct Ctx<'a> {
    path: &'a Path,
    at: Location,
}

impl Ctx<'_> {
    fn missing(&self, field: impl Into<String>) -> DataError {
        DataError::MissingField { path: self.path.to_path_buf(), at: self.at, field: field.into() }
    }
    fn wrong(&self, field: impl Into<String>, expected: &'static str, found: &Value) -> DataError {
        DataError::WrongType {
            path: self.path.to_path_buf(),
            at: self.at,
            field: field.into(),
            expected,
            found: abbreviate(found),
        }
    }
    fn string(&self, obj: &serde_json::Map<String, Value>, key: &str, field: &str) -> Result<String, DataError> {
        match obj.get(key) {
            None | Some(Value::Null) => Err(self.missing(field)),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.wrong(field, "a string", other)),
        }
    }
}

/// Validates one LongLaMP record (`input`, `output`, `profile`, optional
/// `id` and user id) and builds the example. `default_id` is used when the
/// record has no `id`; `path` and `at` name the record in errors.
///
/// # Errors
/// A missing or mistyped field, an empty profile, or a duplicate profile
/// item id, naming `path`, `at` and the field (`profile[i].text`).
pub fn record_to_example(
    v: &Value,
    task: Task,
    path: &Path,
    at: Location,
    default_id: &str,
) -> Result<Example, DataError> {
    let cx = Ctx { path, at };
    let obj = v.as_object().ok_or_else(|| cx.wrong("(record)", "an object", v))?;
    let input = cx.string(obj, "input", "input")?;
    let output = cx.string(obj, "output", "output")?;
    let id = match obj.get("id") {
        None | Some(Value::Null) => default_id.to_string(),
        Some(v) => scalar_text(v).ok_or_else(|| cx.wrong("id", "a string or number", v))?,
    };
    let user_id = ["user_id", "userId", "reviewerId", "author", "name"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(scalar_text))
        .unwrap_or_else(|| id.clone());
    let profile_v = match obj.get("profile") {
        None | Some(Value::Null) => return Err(cx.missing("profile")),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(cx.wrong("profile", "an array", other)),
    };
    if profile_v.is_empty() {
        return Err(DataError::EmptyProfile { path: path.to_path_buf(), at });
    }
    let mut profile = Vec::with_capacity(profile_v.len());
    let mut item_ids: HashMap<String, usize> = HashMap::new();
    for (i, item) in profile_v.iter().enumerate() {
        let item = profile_item(&cx, item, i, task, &id)?;
        if let Some(first) = item_ids.insert(item.id.clone(), i) {
            return Err(DataError::DuplicateId {
                path: path.to_path_buf(),
                at,
                field: format!("profile[{i}].id"),
                id: item.id,
                first: format!("profile[{first}]"),
            });
        }
        profile.push(item);
    }
    Ok(Example { id, task, user_id, input, output, profile })
}

fn profile_item(cx: &Ctx<'_>, v: &Value, i: usize, task: Task, example_id: &str) -> Result<ProfileItem, DataError> {
    let obj = v.as_object().ok_or_else(|| cx.wrong(format!("profile[{i}]"), "an object", v))?;
    let id = match obj.get("id") {
        None | Some(Value::Null) => format!("{example_id}-p{i}"),
        Some(v) => scalar_text(v).ok_or_else(|| cx.wrong(format!("profile[{i}].id"), "a string or number", v))?,
    };
    let mut fields = BTreeMap::new();
    // Extra fields first, so that a canonical field wins over an alias and
    // over a same-named extra.
    for (k, v) in obj {
        if k == "id" || v.is_null() {
            continue;
        }
        let key = task.field_aliases().iter().find(|(alias, _)| alias == k).map(|(_, c)| *c).unwrap_or(k.as_str());
        if key != k.as_str() && obj.get(key).is_some_and(|v| !v.is_null()) {
            // Both the alias and the canonical name are present: keep the
            // alias under its own name rather than overwrite.
            fields.insert(k.clone(), scalar_text(v).unwrap_or_else(|| v.to_string()));
            continue;
        }
        let text = match scalar_text(v) {
            Some(t) => t,
            None if task.profile_fields().contains(&key) => {
                return Err(cx.wrong(format!("profile[{i}].{key}"), "a string or number", v))
            }
            None => v.to_string(),
        };
        fields.insert(key.to_string(), text);
    }
    for f in task.profile_fields() {
        if !fields.contains_key(*f) {
            return Err(cx.missing(format!("profile[{i}].{f}")));
        }
    }
    Ok(ProfileItem { id, fields })
}

impl Dataset {
    /// Reads a LongLaMP task directory as published (one file per split
    /// whose name starts with `train`, `val`/`dev`/`validation` or `test`,
    /// in any of the formats [`load_longlamp`] reads). Splits without a file
    /// stay empty.
    ///
    /// # Errors
    /// As [`load_longlamp_with`]; duplicate example ids across splits; a
    /// directory with no split file at all.
    pub fn from_longlamp_dir(dir: &Path, task: Task, opts: &LoadOptions) -> anyhow::Result<(Self, LoadReport)> {
        let mut examples: BTreeMap<Split, Vec<Example>> = BTreeMap::new();
        let mut report = LoadReport::default();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        let mut found = false;
        for path in entries {
            let stem = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
            let split = if stem.starts_with("train") {
                Split::Train
            } else if stem.starts_with("val") || stem.starts_with("dev") {
                Split::Validation
            } else if stem.starts_with("test") {
                Split::Test
            } else {
                continue;
            };
            found = true;
            let (found_examples, r) = load_longlamp_with(&path, task, opts)?;
            report.merge(r);
            examples.entry(split).or_default().extend(found_examples);
        }
        if !found {
            anyhow::bail!("{}: no train/val/test file found", dir.display());
        }
        let ds = Dataset::from_splits(format!("LongLaMP {task} from {}", dir.display()), examples)?;
        Ok((ds, report))
    }
}
