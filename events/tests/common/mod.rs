//! Shared by the schema fixture tests.

/// The records of a committed fixture file under `tests/fixtures/`, stored
/// as `[u32 LE length][record]` entries.
pub fn fixture_records(name: &str) -> Vec<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let bytes = std::fs::read(&path).expect("the committed fixture");
    let mut records = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        records.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    records
}
