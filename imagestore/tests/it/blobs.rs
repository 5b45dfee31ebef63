//! Blob ingest: verification while streaming, nothing visible on failure.

use berth_imagestore::blob_store::BlobStore;
use berth_imagestore::{Digest, StoreError};

fn setup() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = BlobStore::open(dir.path()).expect("open");
    (dir, blobs)
}

fn assert_nothing_visible(blobs: &BlobStore) {
    assert!(
        blobs.list().expect("list").is_empty(),
        "a blob became visible"
    );
    assert!(
        blobs.ingest_entries().expect("ingest").is_empty(),
        "ingest not cleaned"
    );
}

#[test]
fn good_blob_is_committed() {
    let (_dir, blobs) = setup();
    let data = b"hello berth".repeat(100_000);
    let digest = Digest::of(&data);
    let path = blobs
        .ingest(&digest, Some(data.len() as u64), &data[..])
        .expect("ingest");
    assert_eq!(path, blobs.path(&digest));
    assert_eq!(std::fs::read(&path).expect("read"), data);
    assert_eq!(blobs.list().expect("list"), vec![digest]);
    assert!(blobs.ingest_entries().expect("ingest").is_empty());
}

#[test]
fn wrong_digest_is_refused_and_names_the_digest() {
    let (_dir, blobs) = setup();
    let claimed = Digest::of(b"what the manifest said");
    let err = blobs
        .ingest(&claimed, Some(9), &b"evil data"[..])
        .expect_err("must fail");
    assert!(
        matches!(&err, StoreError::DigestMismatch { expected, .. } if *expected == claimed),
        "{err}"
    );
    assert!(err.to_string().contains(&claimed.to_string()), "{err}");
    assert_nothing_visible(&blobs);
}

#[test]
fn truncated_blob_is_refused() {
    let (_dir, blobs) = setup();
    let data = vec![7u8; 10_000];
    let digest = Digest::of(&data);
    let err = blobs
        .ingest(&digest, Some(10_000), &data[..6_000])
        .expect_err("must fail");
    assert!(
        matches!(&err, StoreError::SizeMismatch { digest: d, truncated: true, actual: 6_000, .. } if *d == digest),
        "{err}"
    );
    assert!(err.to_string().contains(&digest.to_string()), "{err}");
    assert_nothing_visible(&blobs);
}

#[test]
fn oversized_blob_is_refused_while_streaming() {
    let (_dir, blobs) = setup();
    let data = vec![7u8; 10_000];
    let digest = Digest::of(&data[..100]);
    // The writer must stop at byte 101, not read the whole (possibly
    // endless) stream.
    let err = blobs
        .ingest(&digest, Some(100), std::io::repeat(7))
        .expect_err("must fail");
    assert!(
        matches!(
            &err,
            StoreError::SizeMismatch {
                truncated: false,
                ..
            }
        ),
        "{err}"
    );
    assert_nothing_visible(&blobs);
}

#[test]
fn interrupted_ingest_is_cleared_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = BlobStore::open(dir.path()).expect("open");
    let digest = Digest::of(b"x");
    let mut writer = blobs.begin(&digest, Some(1)).expect("begin");
    writer.write(b"x").expect("write");
    std::mem::forget(writer); // as if the process died mid-ingest
    assert_eq!(blobs.ingest_entries().expect("ingest").len(), 1);
    blobs.clear_ingest().expect("clear");
    assert_nothing_visible(&blobs);
}
