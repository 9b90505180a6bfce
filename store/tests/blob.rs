//! The checkpoint blob store, given / when / then.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use events::digest_hex;
use restpg_store::{hash_path, BlobStore, RunDir, StoreError};

fn store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = RunDir::create(dir.path().join("run")).unwrap().blob_store().unwrap();
    (dir, blobs)
}

#[test]
fn a_file_is_stored_under_its_blake3_and_read_back_checked() {
    // Given a safetensors-sized file
    let (dir, blobs) = store();
    let src = dir.path().join("model.safetensors");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&src, &bytes).unwrap();
    // When it is put
    let hash = blobs.put(&src).unwrap();
    // Then its name is the plain blake3 of its bytes, private to the owner
    assert_eq!(hash, events::digest(&bytes));
    let path = blobs.get(&hash).unwrap();
    assert_eq!(path, dir.path().join("run/blobs").join(digest_hex(&hash)));
    assert_eq!(fs::read(&path).unwrap(), bytes);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(BlobStore::relative_path(&hash), format!("blobs/{}", digest_hex(&hash)));
    // and putting the same content again changes nothing
    assert_eq!(blobs.put(&src).unwrap(), hash);
    assert_eq!(blobs.put_bytes(&bytes).unwrap(), hash);
    assert_eq!(fs::read_dir(dir.path().join("run/blobs")).unwrap().count(), 1, "no temporary files left");
}

#[test]
fn a_truncated_checkpoint_is_an_error_naming_its_hash_and_path() {
    // Given a stored checkpoint
    let (_dir, blobs) = store();
    let hash = blobs.put_bytes(&vec![42u8; 10_000]).unwrap();
    let path = blobs.path_of(&hash);
    // When the file is truncated
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(4_000).unwrap();
    // Then reading it fails, naming the hash, the path and what happened
    let err = blobs.get(&hash).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::BlobCorrupt { size: 4_000, .. }), "{text}");
    assert!(text.contains(&digest_hex(&hash)) && text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("truncated or altered"), "{text}");
    // and putting the intact content again repairs it
    blobs.put_bytes(&vec![42u8; 10_000]).unwrap();
    assert_eq!(blobs.get(&hash).unwrap(), path);
}

#[test]
fn a_missing_checkpoint_is_an_error_naming_its_hash() {
    let (_dir, blobs) = store();
    let hash = events::digest(b"never stored");
    let err = blobs.get(&hash).unwrap_err();
    assert!(matches!(err, StoreError::BlobMissing { .. }));
    assert!(err.to_string().contains(&digest_hex(&hash)), "{err}");
    assert!(!blobs.contains(&hash));
}

#[test]
fn a_model_directory_is_stored_whole_under_its_tree_digest() {
    // Given a Hugging Face-layout directory
    let (dir, blobs) = store();
    let src = dir.path().join("ckpt");
    fs::create_dir_all(src.join("tokenizer")).unwrap();
    fs::write(src.join("model.safetensors"), vec![1u8; 5000]).unwrap();
    fs::write(src.join("config.json"), b"{\"hidden_size\": 576}").unwrap();
    fs::write(src.join("tokenizer/tokenizer.json"), b"{}").unwrap();
    // When it is put
    let hash = blobs.put(&src).unwrap();
    // Then the stored copy has the same files and the same digest
    assert_eq!(hash, hash_path(&src).unwrap());
    let stored = blobs.get(&hash).unwrap();
    assert_eq!(fs::read(stored.join("config.json")).unwrap(), b"{\"hidden_size\": 576}");
    assert_eq!(fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o700);
    // and a renamed, changed or missing file changes the digest
    fs::rename(src.join("config.json"), src.join("config2.json")).unwrap();
    assert_ne!(hash_path(&src).unwrap(), hash);
    // and a file removed from the stored copy is caught on read
    fs::remove_file(stored.join("tokenizer/tokenizer.json")).unwrap();
    let err = blobs.get(&hash).unwrap_err();
    assert!(matches!(err, StoreError::BlobCorrupt { .. }), "{err}");
}
