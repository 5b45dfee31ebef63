//! Helpers shared by the integration tests: running the independent peer
//! tools (failing, never skipping, when one is missing) and reading blobs.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_rootfs_fixtures::Fixtures;

/// The shared fixtures (built on first use).
pub fn fixtures() -> Fixtures {
    Fixtures::get().expect("building fixtures failed")
}

/// Absolute path of a peer tool, or a failure telling how to install it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run scripts/install-deps (as root) first")
        })
}

/// Runs `name args...`, failing the test with its output unless it succeeds.
pub fn run(name: &str, args: &[&str]) -> Output {
    let output = Command::new(tool(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        output.status.success(),
        "`{name} {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `run` returning stdout as a string.
pub fn run_stdout(name: &str, args: &[&str]) -> String {
    String::from_utf8(run(name, args).stdout).expect("tool output is not UTF-8")
}

/// Path of a blob in an OCI layout, given its `sha256:<hex>` digest.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    layout.join("blobs").join("sha256").join(hex)
}

/// Contents of a blob in an OCI layout.
pub fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let path = blob_path(layout, digest);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `path` as `&str` (test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Parses JSON bytes.
pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("invalid JSON")
}

/// Whether the tests run as root (umoci then needs no `--rootless`).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|meta| meta.uid() == 0)
        .unwrap_or(false)
}
