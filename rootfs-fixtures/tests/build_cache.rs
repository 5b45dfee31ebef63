//! Building fixtures into fresh cache roots: reproducibility across builds,
//! reuse of an existing build, and the on-disk layout `fixtures.json` lists.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_rootfs_fixtures::{FIXTURES_JSON, Fixtures};
use common::blob_path;
use sha2::{Digest, Sha256};

fn sha256_file(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[test]
fn two_builds_are_byte_identical() {
    let (a, b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let fa = Fixtures::at(a.path()).expect("build a");
    let fb = Fixtures::at(b.path()).expect("build b");
    assert_eq!(
        fa.dir().file_name(),
        fb.dir().file_name(),
        "same inputs, same key"
    );
    let ja = fs::read_to_string(fa.dir().join(FIXTURES_JSON)).expect("read a");
    let jb = fs::read_to_string(fb.dir().join(FIXTURES_JSON)).expect("read b");
    assert_eq!(ja, jb, "fixtures.json differs between builds");

    // Beyond the recorded digests: every file of every layout and archive.
    let manifest = fa.manifest().expect("manifest");
    for layout in manifest.oci_layouts.values() {
        for file in ["index.json", "oci-layout"] {
            let (pa, pb) = (
                fa.dir().join(&layout.path).join(file),
                fb.dir().join(&layout.path).join(file),
            );
            assert_eq!(
                fs::read(&pa).expect("read"),
                fs::read(&pb).expect("read"),
                "{}",
                pa.display()
            );
        }
    }
    for archive in manifest.docker_archives.values() {
        assert_eq!(sha256_file(&fb.dir().join(&archive.path)), archive.sha256);
    }
    for name in ["true", "sh", "sleep"] {
        let config =
            |f: &Fixtures| fs::read_to_string(f.bundle(name).join("config.json")).expect("read");
        assert_eq!(config(&fa), config(&fb), "bundle {name}");
    }
}

#[test]
fn an_existing_build_is_reused() {
    let root = tempfile::tempdir().expect("tempdir");
    let first = Fixtures::at(root.path()).expect("build");
    let json = first.dir().join(FIXTURES_JSON);
    // Make any rewrite detectable even on filesystems with coarse mtimes.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(&json)
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    let before = fs::metadata(&json).expect("stat");

    let second = Fixtures::at(root.path()).expect("reuse");
    assert_eq!(first.dir(), second.dir());
    let after = fs::metadata(&json).expect("stat");
    assert_eq!(before.mtime(), after.mtime(), "fixtures.json was rewritten");
    assert_eq!(before.ino(), after.ino(), "fixtures.json was replaced");
    let entries: Vec<String> = fs::read_dir(root.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one key directory, no temporaries: {entries:?}"
    );
}

#[test]
fn concurrent_processes_build_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_berth-fixtures");
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(bin)
                .args(["--cache-dir", common::s(root.path())])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn berth-fixtures")
        })
        .collect();
    let mut dirs = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait for berth-fixtures");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dirs.push(String::from_utf8(out.stdout).expect("utf-8"));
    }
    dirs.dedup();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
}

#[test]
fn manifest_paths_and_blobs_exist() {
    let root = tempfile::tempdir().expect("tempdir");
    let fixtures = Fixtures::at(root.path()).expect("build");
    let manifest = fixtures.manifest().expect("manifest");
    assert_eq!(
        fixtures.dir().file_name().and_then(|n| n.to_str()),
        Some(manifest.key.as_str())
    );
    assert!(fixtures.rootfs().join("bin/busybox").is_file());
    assert_eq!(fixtures.dir().join(&manifest.rootfs), fixtures.rootfs());

    let bundles: Vec<_> = manifest.bundles.keys().map(String::as_str).collect();
    assert_eq!(bundles, ["sh", "sleep", "true"]);
    for (name, bundle) in &manifest.bundles {
        assert_eq!(fixtures.dir().join(&bundle.path), fixtures.bundle(name));
        assert!(
            fixtures.bundle(name).join("rootfs/bin/sh").exists(),
            "{name}"
        );
    }

    let layouts: Vec<_> = manifest.oci_layouts.keys().map(String::as_str).collect();
    assert_eq!(
        layouts,
        [
            "busybox-gzip",
            "busybox-uncompressed",
            "busybox-zstd",
            "index-two-platforms",
            "multi-layer"
        ]
    );
    for (name, layout) in &manifest.oci_layouts {
        let dir = fixtures.oci_layout(name);
        assert_eq!(fixtures.dir().join(&layout.path), dir);
        let tags: Vec<_> = layout.tags.keys().map(String::as_str).collect();
        assert_eq!(tags, ["latest"], "{name}");
        for tag in layout.tags.values() {
            assert_eq!(sha256_file(&blob_path(&dir, &tag.digest)), tag.digest);
            for image in &tag.images {
                for digest in [&image.manifest_digest, &image.config_digest] {
                    assert_eq!(sha256_file(&blob_path(&dir, digest)), *digest, "{name}");
                }
                for layer in &image.layers {
                    let path = blob_path(&dir, &layer.digest);
                    assert_eq!(sha256_file(&path), layer.digest, "{name}");
                    assert_eq!(fs::metadata(&path).expect("stat").len(), layer.size);
                }
            }
        }
    }
    let archives: Vec<_> = manifest
        .docker_archives
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(archives, ["busybox", "multi-layer"]);
    for (name, archive) in &manifest.docker_archives {
        assert_eq!(
            fixtures.dir().join(&archive.path),
            fixtures.docker_archive(name)
        );
    }
}

#[test]
fn missing_busybox_fails_with_install_hint() {
    let root = tempfile::tempdir().expect("tempdir");
    let err = Fixtures::at_with_busybox(root.path(), Path::new("/nonexistent/busybox"))
        .expect_err("no busybox");
    assert!(err.to_string().contains("scripts/install-deps"), "{err}");
}
