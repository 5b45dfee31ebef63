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
                b.edit(|c| c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_NOTIFY"}))
            }),
            "SCMP_ACT_NOTIFY is not supported yet",
        ),
        (
            "terminal",
            Box::new(|b| b.edit(|c| c["process"]["terminal"] = json!(true))),
            "cannot allocate tty if runc will detach without setting console socket",
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

/// This host's `/sys/fs/cgroup` is not a cgroup2 mount (a hybrid v1 layout): `cgroupfs`,
/// the default, must refuse to create a container there before touching any cgroup, and
/// say how to run without cgroups. `systemd` is not supported yet. Commands that only read
/// the state work with any manager.
#[test]
fn cgroup_managers_on_a_host_without_cgroup2() {
    common::require_root();
    let magic = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .unwrap()
        .filesystem_type();
    assert_ne!(
        magic,
        nix::sys::statfs::CGROUP2_SUPER_MAGIC,
        "this test expects a host without a cgroup2 /sys/fs/cgroup (cgroup tests run in the VM)"
    );
    let root = tempfile::tempdir().unwrap();
    let b = TestBundle::new(&["/bin/true"]);
    for (flag, expected) in [
        (
            &[][..],
            "cgroup manager cgroupfs needs a cgroup v2 (unified) hierarchy at /sys/fs/cgroup",
        ),
        (
            &["--cgroup-manager", "cgroupfs"],
            "run with --cgroup-manager disabled to run without cgroups",
        ),
        (
            &["--cgroup-manager", "systemd"],
            "cgroup manager systemd is not supported yet",
        ),
        (
            &["--systemd-cgroup"],
            "cgroup manager systemd is not supported yet",
        ),
    ] {
        let out = std::process::Command::new(common::BIN)
            .arg("--root")
            .arg(root.path())
            .args(flag)
            .args(["run", "--bundle"])
            .arg(b.path())
            .arg("cg")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        fails_with(&out, expected);
        assert!(
            std::fs::read_dir(root.path()).map_or(true, |mut d| d.next().is_none()),
            "state left behind"
        );
        let list = std::process::Command::new(common::BIN)
            .arg("--root")
            .arg(root.path())
            .args(flag)
            .args(["list", "-q"])
            .output()
            .unwrap();
        assert!(list.status.success(), "{}", common::stderr(&list));
    }
}

/// The cgroup commands on a container created without cgroups say why they cannot work.
#[test]
fn cgroup_commands_without_a_cgroup() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    ok(&rt.create(&b, "nocg", &[]));
    for args in [
        &["pause", "nocg"][..],
        &["resume", "nocg"],
        &["ps", "nocg"],
        &["update", "--memory", "64m", "nocg"],
        &["events", "--stats", "nocg"],
    ] {
        let out = rt.run(args);
        if args[0] == "resume" {
            fails_with(&out, "cannot resume container nocg: container is created");
        } else {
            fails_with(
                &out,
                "it has no cgroup (it was created with --cgroup-manager disabled)",
            );
        }
    }
    fails_with(
        &rt.run(&["pause", "nosuch"]),
        "container does not exist: nosuch",
    );
    ok(&rt.run(&["delete", "nocg"]));
    assert!(rt.is_empty());
}

#[test]
fn unsupported_commands_say_so() {
    let rt = Runtime::new();
    fails_with(
        &rt.run(&["checkpoint", "c"]),
        "the checkpoint command is not supported yet",
    );
    fails_with(
        &rt.run(&["restore", "c"]),
        "the restore command is not supported yet",
    );
    let b = TestBundle::new(&["/bin/true"]);
    let out = rt
        .cmd()
        .args(["create", "--console-socket", "/tmp/s", "--bundle"])
        .arg(b.path())
        .arg("c")
        .output()
        .unwrap();
    fails_with(
        &out,
        "cannot use console socket if runc will not detach or allocate tty",
    );
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
