//! Host tests of the VM harness itself: they boot the cgroup-v2 VM through
//! `tests/vm/run` and the `berth-vm-tests` runner and check that statuses, streams and
//! failures come back to the host faithfully. Each boot takes ~5 s.

use std::process::{Command, Output};

use berth_tests::{require_root, vm_run_script};

fn vm_run(args: &[&str]) -> Output {
    require_root("booting the test VM");
    Command::new(vm_run_script())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", vm_run_script().display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn guest_prints_its_cgroup_v2_controllers() {
    let out = vm_run(&["--", "cat", "/sys/fs/cgroup/cgroup.controllers"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "vm run failed: {out:?}");
    for c in ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"] {
        assert!(
            stdout.split_whitespace().any(|w| w == c),
            "{c} missing from {stdout:?}"
        );
    }
}

#[test]
fn exit_status_and_streams_come_back_separately() {
    let out = vm_run(&[
        "--",
        "sh",
        "-c",
        "echo 'to  stdout'; echo to-stderr >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(text(&out.stdout), "to  stdout\n");
    assert!(text(&out.stderr).contains("to-stderr"), "{out:?}");
    assert!(!text(&out.stdout).contains("to-stderr"));
}

#[test]
fn guest_that_never_reports_fails_with_console_tail() {
    // The command powers the guest off before it can report a status.
    let out = vm_run(&["--", "sh", "-c", "echo going-down; poweroff -f"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("never reported"),
        "no diagnosis on stderr: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("console"),
        "no console tail: {stderr}"
    );
}

#[test]
fn failing_guest_test_fails_the_vm_run() {
    require_root("booting the test VM");
    let out = Command::new(env!("CARGO_BIN_EXE_berth-vm-tests"))
        .args([
            "--features",
            "vm-selftest-fail",
            "--test",
            "selftest_failing_guest",
        ])
        .output()
        .expect("running berth-vm-tests");
    let stdout = text(&out.stdout);
    assert!(
        !out.status.success(),
        "a failing guest test did not fail the run:\n{stdout}"
    );
    assert!(
        stdout.contains("test deliberately_fails ... FAILED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("test passes_in_the_guest ... ok"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "vm: 1 passed, 1 failed"),
        "{stdout}"
    );
}
