//! Guest test (runs inside the cgroup-v2 VM): the VM gives containers a real cgroup v2
//! tree with every controller berth needs, delegated to child cgroups.

use std::fs;
use std::path::Path;

const REQUIRED: [&str; 6] = ["cpu", "cpuset", "io", "memory", "pids", "hugetlb"];

fn words(path: &str) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn root_cgroup_has_every_controller() {
    berth_tests::require_guest();
    let available = words("/sys/fs/cgroup/cgroup.controllers");
    for c in REQUIRED {
        assert!(
            available.iter().any(|a| a == c),
            "controller {c} missing from {available:?}"
        );
    }
}

#[test]
fn controllers_are_enabled_for_children() {
    berth_tests::require_guest();
    let enabled = words("/sys/fs/cgroup/cgroup.subtree_control");
    for c in REQUIRED {
        assert!(
            enabled.iter().any(|a| a == c),
            "controller {c} not in subtree_control {enabled:?}"
        );
    }
}

#[test]
fn child_cgroup_enforces_pids_max() {
    berth_tests::require_guest();
    let dir = Path::new("/sys/fs/cgroup/berth-smoke-pids");
    let _ = fs::remove_dir(dir);
    fs::create_dir(dir).expect("creating a child cgroup");
    for file in [
        "memory.max",
        "cpu.max",
        "pids.max",
        "io.max",
        "cpuset.cpus",
        "hugetlb.2MB.max",
    ] {
        assert!(dir.join(file).exists(), "{file} missing in a child cgroup");
    }
    fs::write(dir.join("pids.max"), "1").expect("writing pids.max");
    // A shell moved into the cgroup may not fork: pids.max = 1 counts the shell itself.
    // (`&& echo` keeps sh from exec'ing /bin/true in its own place, which needs no fork.)
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && /bin/true && echo forked",
            dir.display()
        ))
        .output()
        .expect("running sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("forked"),
        "fork inside a pids.max=1 cgroup succeeded"
    );
    let events = fs::read_to_string(dir.join("pids.events")).expect("reading pids.events");
    assert!(
        events.contains("max 1"),
        "pids.events does not count the refused fork: {events}"
    );
    fs::remove_dir(dir).expect("removing the child cgroup");
}
