//! Bad input and failing set-up steps: a clear message naming the field or path, exit
//! status 1, and nothing left behind.

mod common;

use common::{Runtime, TestBundle, ok, stderr};
use serde_json::json;

fn fails_with(out: &std::process::Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure; stderr={}",
        stderr(out)
    );
    assert!(
        stderr(out).contains(needle),
        "stderr {:?} lacks {needle:?}",
        stderr(out)
    );
}

#[test]
fn unknown_container() {
    let rt = Runtime::new();
    for cmd in [
        &["state", "nope"][..],
        &["start", "nope"],
        &["kill", "nope"],
        &["delete", "nope"],
    ] {
        fails_with(&rt.run(cmd), "container does not exist");
    }
}

#[test]
fn duplicate_and_invalid_ids() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/true"]);
    let create = |id: &str| rt.create(&b, id, &[]);
    ok(&create("dup"));
    fails_with(&create("dup"), "container with id dup already exists");
    ok(&rt.run(&["delete", "dup"]));
    for bad in ["a/b", "..", "bad id", ""] {
        fails_with(&create(bad), "invalid container id");
    }
    assert!(rt.is_empty());
}

/// Damages a fresh bundle in one specific way.
type BreakBundle = Box<dyn Fn(&TestBundle)>;

#[test]
fn bundle_errors_name_the_field_and_leave_nothing() {
    let rt = Runtime::new();
    let cases: Vec<(&str, BreakBundle, &str)> = vec![
        (
            "missing-rootfs",
            Box::new(|b| std::fs::remove_dir_all(b.rootfs()).unwrap()),
            "rootfs",
        ),
        (
            "missing-config",
            Box::new(|b| std::fs::remove_file(b.path().join("config.json")).unwrap()),
            "config.json not found",
        ),
        (
            "bad-json",
            Box::new(|b| std::fs::write(b.path().join("config.json"), "{ nope").unwrap()),
            "invalid config",
        ),
        (
            "version",
            Box::new(|b| b.edit(|c| c["ociVersion"] = json!("2.0.0"))),
            "ociVersion",
        ),
        (
            "no-args",
            Box::new(|b| b.edit(|c| c["process"]["args"] = json!([]))),
            "process.args",
        ),
        (
            "memory",
            Box::new(|b| b.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 1 << 20}))),
            "linux.resources.memory",
        ),
        (
            "seccomp",
            Box::new(|b| {
                b.edit(|c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"}))
            }),
            "linux.seccomp is not supported yet",
        ),
        (
            "terminal",
            Box::new(|b| b.edit(|c| c["process"]["terminal"] = json!(true))),
            "process.terminal",
        ),
        (
            "host-sysctl",
            Box::new(|b| b.edit(|c| c["linux"]["sysctl"] = json!({"vm.swappiness": "1"}))),
            "vm.swappiness",
        ),
    ];
    for (id, break_it, needle) in cases {
        let b = TestBundle::new(&["/bin/true"]);
        break_it(&b);
        let out = rt.create(&b, id, &[]);
        fails_with(&out, needle);
        assert!(rt.is_empty(), "{id}: state left behind");
    }
}

#[test]
fn setup_failures_report_the_path_and_leave_nothing() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/no/such/program", "arg"]);
    let out = rt.create(&b, "x", &[]);
    fails_with(&out, "/no/such/program");
    assert!(rt.is_empty());

    let b = TestBundle::new(&["no-such-program"]);
    let out = rt.run_bundle(&b, "y");
    fails_with(&out, "executable file not found in $PATH");

    let b = TestBundle::new(&["/bin/true"]);
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/weird", "type": "nosuchfs", "source": "none"
        }))
    });
    let out = rt.run_bundle(&b, "z");
    fails_with(&out, "mounts[7]");
    fails_with(&out, "/mnt/weird");
    assert!(rt.is_empty());
    // No container init is left waiting on its exec fifo.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(!ps.contains("/no/such/program"), "{ps}");
}

#[test]
fn cgroup_managers_other_than_disabled_are_refused() {
    common::require_root();
    let root = tempfile::tempdir().unwrap();
    for (flag, name) in [
        (&["--cgroup-manager", "cgroupfs"][..], "cgroupfs"),
        (&["--cgroup-manager", "systemd"], "systemd"),
        (&["--systemd-cgroup"], "systemd"),
    ] {
        let out = std::process::Command::new(common::BIN)
            .arg("--root")
            .arg(root.path())
            .args(flag)
            .args(["list"])
            .output()
            .unwrap();
        fails_with(&out, &format!("cgroup manager {name} is not supported yet"));
    }
}

#[test]
fn unsupported_commands_say_so() {
    let rt = Runtime::new();
    fails_with(
        &rt.run(&["exec", "c", "sh"]),
        "the exec command is not supported yet",
    );
    fails_with(&rt.run(&["pause", "c"]), "not supported yet");
    let b = TestBundle::new(&["/bin/true"]);
    let out = rt
        .cmd()
        .args(["create", "--console-socket", "/tmp/s", "--bundle"])
        .arg(b.path())
        .arg("c")
        .output()
        .unwrap();
    fails_with(&out, "--console-socket is not supported yet");
}

#[test]
fn spec_refuses_to_overwrite_and_version_format() {
    let d = tempfile::tempdir().unwrap();
    let spec = |extra: &[&str]| {
        std::process::Command::new(common::BIN)
            .args(["spec", "--bundle"])
            .arg(d.path())
            .args(extra)
            .output()
            .unwrap()
    };
    ok(&spec(&[]));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["terminal"], true);
    fails_with(&spec(&[]), "config.json");
    std::fs::remove_file(d.path().join("config.json")).unwrap();
    ok(&spec(&["--rootless"]));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert!(v["linux"]["uidMappings"].is_array());

    let out = std::process::Command::new(common::BIN)
        .arg("--version")
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.starts_with("berth-runtime version "), "{text}");
    assert!(
        text.lines().nth(1).unwrap().starts_with("spec: 1."),
        "{text}"
    );
}
