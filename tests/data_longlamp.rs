//! LongLaMP loader: each task's fixture in each format loads; malformed files
//! give errors naming the file, the line and the field; `skip_invalid` counts
//! what it skips.

use std::path::{Path, PathBuf};

use restpg::data::{load_longlamp, load_longlamp_with, Dataset, LoadOptions, Split, Task};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/longlamp").join(name)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn review_json_array_loads_with_numeric_ratings() {
    let ex = load_longlamp(&fixture("review_writing.json"), Task::ReviewWriting).unwrap();
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[0].user_id, "A1REV0001");
    assert_eq!(ex[0].id, "review_writing-1");
    assert_eq!(ex[0].profile.len(), 2);
    // A JSON number becomes its JSON text; a string stays as written.
    assert_eq!(ex[0].profile[0].field("overall"), "5.0");
    assert_eq!(ex[1].profile[0].field("overall"), "3.0");
    assert_eq!(ex[0].profile[0].id, "review_writing-1-p0");
    assert!(ex[2].output.starts_with("It charged my phone"));
}

#[test]
fn abstract_jsonl_loads_with_item_ids() {
    let ex = load_longlamp(&fixture("abstract_generation.jsonl"), Task::AbstractGeneration).unwrap();
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[0].user_id, "Ada Researcher");
    assert_eq!(ex[0].profile[1].id, "p-ada-2");
    assert_eq!(ex[0].profile[0].field("title"), "Efficient transformers for summarization");
}

#[test]
fn email_jsonl_maps_title_alias_to_subject() {
    let ex = load_longlamp(&fixture("email_completion.jsonl"), Task::EmailCompletion).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].profile[1].field("subject"), "Release notes");
    assert_eq!(ex[1].user_id, "sender-b");
}

#[test]
fn topic_parquet_equals_topic_jsonl() {
    let from_jsonl = load_longlamp(&fixture("topic_writing.jsonl"), Task::TopicWriting).unwrap();
    let from_parquet = load_longlamp(&fixture("topic_writing.parquet"), Task::TopicWriting).unwrap();
    assert_eq!(from_parquet.len(), 3);
    for (a, b) in from_jsonl.iter().zip(&from_parquet) {
        assert_eq!(a.input, b.input);
        assert_eq!(a.output, b.output);
        assert_eq!(a.user_id, b.user_id);
        assert_eq!(
            a.profile.iter().map(|p| &p.fields).collect::<Vec<_>>(),
            b.profile.iter().map(|p| &p.fields).collect::<Vec<_>>()
        );
    }
}

#[test]
fn longlamp_directory_becomes_a_dataset_that_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("topic_writing_user");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(fixture("topic_writing.parquet"), src.join("train-00000-of-00001.parquet")).unwrap();
    // Val and test reuse the JSONL rows under other ids.
    let text = std::fs::read_to_string(fixture("topic_writing.jsonl")).unwrap();
    let val: String = text.lines().take(1).map(|l| l.replacen('{', "{\"id\": \"v1\", ", 1) + "\n").collect();
    let test: String = text.lines().skip(1).take(1).map(|l| l.replacen('{', "{\"id\": \"t1\", ", 1) + "\n").collect();
    std::fs::write(src.join("val.jsonl"), val).unwrap();
    std::fs::write(src.join("test.jsonl"), test).unwrap();
    let (ds, report) = Dataset::from_longlamp_dir(&src, Task::TopicWriting, &LoadOptions::default()).unwrap();
    assert_eq!(report.loaded, 5);
    assert_eq!(ds.split(Split::Train).len(), 3);
    assert_eq!(ds.split(Split::Validation)[0].id, "v1");
    let out = tmp.path().join("ds");
    ds.save(&out).unwrap();
    let back = Dataset::load(&out).unwrap();
    assert_eq!(back, ds);
    assert_eq!(back.digest(), ds.digest());
    // Editing a saved file breaks the digest.
    let path = out.join("val.jsonl");
    let edited = std::fs::read_to_string(&path).unwrap().replace("Learned to bake", "Learnt to bake");
    std::fs::write(&path, edited).unwrap();
    let err = Dataset::load(&out).unwrap_err().to_string();
    assert!(err.contains("digest mismatch"), "{err}");
}

#[test]
fn missing_field_names_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        tmp.path(),
        "bad.jsonl",
        b"{\"input\": \"a\", \"output\": \"b\", \"profile\": [{\"title\": \"t\", \"abstract\": \"x\"}]}\n\
          {\"input\": \"a\", \"output\": \"b\", \"profile\": [{\"title\": \"t\"}]}\n",
    );
    let err = load_longlamp(&p, Task::AbstractGeneration).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl") && err.contains("line 2") && err.contains("`profile[0].abstract`"), "{err}");

    let p = write(
        tmp.path(),
        "noout.jsonl",
        b"{\"input\": \"a\", \"profile\": [{\"title\": \"t\", \"abstract\": \"x\"}]}\n",
    );
    let err = load_longlamp(&p, Task::AbstractGeneration).unwrap_err().to_string();
    assert!(err.contains("noout.jsonl: line 1: missing field `output`"), "{err}");
}

#[test]
fn empty_profile_duplicate_ids_bad_json_and_utf8_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "empty.jsonl", b"{\"input\": \"a\", \"output\": \"b\", \"profile\": []}\n");
    let err = load_longlamp(&p, Task::TopicWriting).unwrap_err().to_string();
    assert!(err.contains("empty.jsonl: line 1: field `profile` is empty"), "{err}");

    let row = "{\"id\": \"x1\", \"input\": \"a\", \"output\": \"b\", \"profile\": [{\"summary\": \"s\", \"content\": \"c\"}]}\n";
    let p = write(tmp.path(), "dup.jsonl", format!("{row}\n{row}").as_bytes());
    let err = load_longlamp(&p, Task::TopicWriting).unwrap_err().to_string();
    assert!(err.contains("dup.jsonl: line 3: field `id`: duplicate id \"x1\" (first seen at line 1)"), "{err}");

    let p = write(
        tmp.path(),
        "dupitem.json",
        b"[{\"input\": \"a\", \"output\": \"b\", \"profile\": [{\"id\": 7, \"summary\": \"s\", \"content\": \"c\"}, {\"id\": \"7\", \"summary\": \"s\", \"content\": \"c\"}]}]",
    );
    let err = load_longlamp(&p, Task::TopicWriting).unwrap_err().to_string();
    assert!(err.contains("dupitem.json: record 1: field `profile[1].id`: duplicate id \"7\""), "{err}");

    let p = write(tmp.path(), "notjson.jsonl", format!("{row}{{\"input\": oops}}\n").as_bytes());
    let err = load_longlamp(&p, Task::TopicWriting).unwrap_err().to_string();
    assert!(err.contains("notjson.jsonl: line 2: not JSON"), "{err}");

    let mut bytes = row.as_bytes().to_vec();
    bytes.extend_from_slice(b"{\"input\": \"caf\xe9\", \"output\": \"b\", \"profile\": []}\n");
    let p = write(tmp.path(), "latin1.jsonl", &bytes);
    let err = load_longlamp(&p, Task::TopicWriting).unwrap_err().to_string();
    assert!(err.contains("latin1.jsonl: line 2: not valid UTF-8"), "{err}");

    let p = write(tmp.path(), "wrongtype.json", b"[{\"input\": 3, \"output\": \"b\", \"profile\": []}]");
    let err = load_longlamp(&p, Task::TopicWriting).unwrap_err().to_string();
    assert!(err.contains("wrongtype.json: record 1: field `input` should be a string, found a number (3)"), "{err}");

    let p = write(tmp.path(), "data.csv", b"a,b\n");
    let err = load_longlamp(&p, Task::TopicWriting).unwrap_err().to_string();
    assert!(err.contains("data.csv: unknown format"), "{err}");

    let p = write(tmp.path(), "broken.parquet", b"PAR1 not really parquet");
    let err = load_longlamp(&p, Task::TopicWriting).unwrap_err().to_string();
    assert!(err.contains("broken.parquet: parquet:"), "{err}");
}

#[test]
fn skip_invalid_counts_and_reports_each_skip() {
    let tmp = tempfile::tempdir().unwrap();
    let good = "{\"input\": \"a\", \"output\": \"b\", \"profile\": [{\"summary\": \"s\", \"content\": \"c\"}]}";
    let text = format!("{good}\nnot json\n{{\"input\": \"a\", \"output\": \"b\", \"profile\": []}}\n{good}\n");
    let p = write(tmp.path(), "mixed.jsonl", text.as_bytes());
    assert!(load_longlamp(&p, Task::TopicWriting).is_err());
    let (ex, report) = load_longlamp_with(&p, Task::TopicWriting, &LoadOptions { skip_invalid: true }).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(report.records, 4);
    assert_eq!(report.loaded, 2);
    assert_eq!(report.skipped.len(), 2);
    assert!(report.skipped[0].reason.contains("line 2: not JSON"), "{:?}", report.skipped);
    assert!(report.skipped[1].reason.contains("line 3: field `profile` is empty"), "{:?}", report.skipped);
    // Ids follow the record number, so they stay stable when records are skipped.
    assert_eq!(ex[1].id, "mixed-4");
}

#[test]
fn task_names_parse_and_print() {
    for t in Task::ALL {
        assert_eq!(t.to_string().parse::<Task>().unwrap(), t);
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
    }
    assert_eq!("product_review_user".parse::<Task>().unwrap(), Task::ReviewWriting);
    assert_eq!("abstract_generation_temporal".parse::<Task>().unwrap(), Task::AbstractGeneration);
    assert!("poetry".parse::<Task>().is_err());
}

#[test]
fn an_empty_or_blank_file_is_no_data_set() {
    // Given a 0-byte file, a file of blank lines and an empty JSON array
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [("train.json", &b""[..]), ("train.jsonl", b"\n \n\r\n"), ("val.json", b" [ ] ")] {
        let path = write(dir.path(), name, bytes);
        // when it is loaded, then the error names the file and says why
        let err = load_longlamp(&path, Task::EmailCompletion).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("no records"), "{name}: {err}");
    }
}
