//! Computes `BERTH_FIXTURES_SOURCE_HASH`: a hash over this crate's sources and
//! the locked versions of the crates that shape the fixture bytes, so that
//! any change to how fixtures are built gives them a new cache key.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Crates whose version changes the bytes of the generated fixtures.
const OUTPUT_SHAPING_CRATES: &[&str] = &[
    "flate2",
    "libz-rs-sys",
    "miniz_oxide",
    "oci-spec",
    "serde_json",
    "tar",
    "zlib-rs",
    "zstd",
    "zstd-safe",
    "zstd-sys",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut hasher = Sha256::new();

    let mut files = vec![
        manifest_dir.join("Cargo.toml"),
        manifest_dir.join("build.rs"),
    ];
    collect(&manifest_dir.join("src"), &mut files);
    files.sort();
    for file in &files {
        let rel = file.strip_prefix(&manifest_dir).unwrap_or(file);
        let contents = fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(&contents);
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");

    if let Some(workspace) = manifest_dir.parent() {
        let lock = workspace.join("Cargo.lock");
        println!("cargo:rerun-if-changed={}", lock.display());
        if let Ok(text) = fs::read_to_string(&lock) {
            for (name, version) in locked_versions(&text) {
                if OUTPUT_SHAPING_CRATES.contains(&name.as_str()) {
                    hasher.update(format!("{name} {version}\n").as_bytes());
                }
            }
        }
    }

    println!(
        "cargo:rustc-env=BERTH_FIXTURES_SOURCE_HASH={}",
        hex::encode(hasher.finalize())
    );
}

/// All files below `dir`.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// `(name, version)` of every `[[package]]` in a Cargo.lock, in file order.
fn locked_versions(lock: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if line == "[[package]]" {
            name = None;
        } else if let Some(value) = line.strip_prefix("name = ") {
            name = Some(value.trim_matches('"').to_owned());
        } else if let (Some(value), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            out.push((n, value.trim_matches('"').to_owned()));
        }
    }
    out
}
