//! Shared helpers for berth's integration tests: where the workspace and the VM harness
//! live, guards that make a test fail loudly (never skip) when its environment is wrong,
//! and the parser for libtest's summary lines that the VM runner aggregates.

use std::path::{Path, PathBuf};

pub mod libtest_summary;

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ crate lives one level below the workspace root")
        .to_path_buf()
}

/// `tests/vm/run`: boots the cgroup-v2 VM and runs one command in it.
pub fn vm_run_script() -> PathBuf {
    workspace_root().join("tests/vm/run")
}

/// Fails the calling test (never skips it) unless the process runs as root.
pub fn require_root(what: &str) {
    assert_eq!(
        effective_uid(),
        Some(0),
        "{what} needs root (it boots a VM or creates namespaces); run the test suite as root"
    );
}

/// The effective uid, read from /proc/self/status (second field of `Uid:`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Environment variable the VM runner sets for guest test binaries.
pub const IN_VM_ENV: &str = "BERTH_IN_VM";

/// Fails the calling test unless it runs inside berth's test VM: the runner marks the
/// environment, and /sys/fs/cgroup must be a cgroup2 mount with controllers. Guest tests
/// write cgroups, which must never happen on the build host, so this check comes first.
pub fn require_guest() {
    assert_eq!(
        std::env::var(IN_VM_ENV).as_deref(),
        Ok("1"),
        "this is a guest test: it runs only inside the cgroup-v2 VM; \
         run it with `cargo run -p berth-tests --bin berth-vm-tests`"
    );
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .expect("guest has no cgroup2 mount at /sys/fs/cgroup (reading cgroup.controllers)");
    assert!(
        controllers.split_whitespace().any(|c| c == "memory"),
        "/sys/fs/cgroup has no memory controller ({controllers:?}): not berth's test VM"
    );
}
