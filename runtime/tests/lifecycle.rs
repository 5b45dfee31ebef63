//! create → start → state → kill → delete, and the commands around them.

mod common;

use std::time::{Duration, Instant};

use common::{Runtime, TestBundle, ok, stderr};

fn wait_for_status(rt: &Runtime, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A foreground `run` started just now may not have created the container yet.
        let status = rt
            .state(id)
            .map(|st| st["status"].clone())
            .unwrap_or_default();
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "status stayed {status} (wanted {want})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_start_state_delete() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh", "-c", "echo started > /tmp/marker; exit 0"]);
    b.edit(|c| c["root"]["readonly"] = serde_json::json!(false));
    let pid_file = b.path().join("pid");
    ok(&rt.create(&b, "c1", &["--pid-file", pid_file.to_str().unwrap()]));
    let st = rt.state("c1").unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], "c1");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert_eq!(
        st["bundle"],
        b.path().canonicalize().unwrap().to_str().unwrap()
    );
    // Nothing ran yet.
    assert!(!b.rootfs().join("tmp/marker").exists());

    ok(&rt.run(&["start", "c1"]));
    wait_for_status(&rt, "c1", "stopped");
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("tmp/marker")).unwrap(),
        "started\n"
    );
    assert_eq!(rt.state("c1").unwrap()["pid"], 0);

    let again = rt.run(&["start", "c1"]);
    assert!(!again.status.success());

    ok(&rt.run(&["delete", "c1"]));
    let gone = rt.state("c1").unwrap_err();
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("container does not exist"),
        "{}",
        stderr(&gone)
    );
    assert!(rt.is_empty());
}

#[test]
fn kill_running_container_and_delete_rules() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    ok(&rt.run_detached(&b, "k"));
    wait_for_status(&rt, "k", "running");

    let refused = rt.run(&["delete", "k"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("cannot delete container k that is not stopped: running"));

    // SIGTERM to a pid-1 sleep without a handler is ignored, as with runc; KILL works.
    ok(&rt.run(&["kill", "k", "KILL"]));
    wait_for_status(&rt, "k", "stopped");
    let late = rt.run(&["kill", "k", "TERM"]);
    assert!(!late.status.success());
    ok(&rt.run(&["delete", "k"]));
}

#[test]
fn kill_all_and_delete_force() {
    let rt = Runtime::new();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "trap 'exit 7' TERM; sleep 100 & sleep 100 & wait",
    ]);
    ok(&rt.run_detached(&b, "a"));
    wait_for_status(&rt, "a", "running");
    ok(&rt.run(&["kill", "--all", "a", "SIGTERM"]));
    wait_for_status(&rt, "a", "stopped");
    ok(&rt.run(&["delete", "a"]));

    ok(&rt.run_detached(&b, "f"));
    wait_for_status(&rt, "f", "running");
    let pid = rt.state("f").unwrap()["pid"].as_i64().unwrap();
    ok(&rt.run(&["delete", "--force", "f"]));
    assert!(rt.state("f").is_err());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "init still alive: {stat}"
    );
    // delete --force of a missing container succeeds, like runc.
    ok(&rt.run(&["delete", "--force", "f"]));
}

#[test]
fn foreground_run_reports_signal_death_as_128_plus_signal() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    let mut child = rt
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("s")
        .spawn()
        .unwrap();
    wait_for_status(&rt, "s", "running");
    ok(&rt.run(&["kill", "s", "9"]));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert!(rt.is_empty());
}

#[test]
fn foreground_run_forwards_signals() {
    let rt = Runtime::new();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "trap 'exit 42' TERM; while true; do sleep 0.05; done",
    ]);
    let mut child = rt
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("fw")
        .spawn()
        .unwrap();
    wait_for_status(&rt, "fw", "running");
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(42));
}

#[test]
fn list_formats() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    ok(&rt.create(&b, "l1", &[]));
    let table = ok(&rt.run(&["list"]));
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("l1") && table.contains("created"), "{table}");
    assert_eq!(ok(&rt.run(&["list", "-q"])), "l1\n");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&rt.run(&["list", "--format", "json"]))).unwrap();
    assert_eq!(json[0]["id"], "l1");
    assert_eq!(json[0]["status"], "created");
    // A created container is deleted (and its init killed) without --force, like runc.
    ok(&rt.run(&["delete", "l1"]));
    assert!(rt.is_empty());
}

#[test]
fn runc_style_single_dash_flags() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/true"]);
    let out = std::process::Command::new(common::BIN)
        .arg("-root")
        .arg(rt.root.path())
        .args([
            "-cgroup-manager",
            "disabled",
            "-log-format",
            "json",
            "run",
            "-bundle",
        ])
        .arg(b.path())
        .arg("sd")
        .output()
        .unwrap();
    ok(&out);
}
