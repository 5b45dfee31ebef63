//! Lifecycle hooks: order, state on stdin, env; failing and timed-out hooks fail the
//! command naming the hook and leave nothing behind; poststop failures are only logged.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Runtime, TestBundle, ok, stderr};
use serde_json::{Value, json};

/// A hook appending `<name> <state JSON>` to `log` (a path valid where it runs).
fn logging_hook(name: &str, log: &Path) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("printf '%s ' {name} >> {0}; cat >> {0}; echo \" $HOOKVAR\" >> {0}", log.display())],
        "env": ["HOOKVAR=v-" .to_owned() + name, "PATH=/bin:/usr/bin"],
    })
}

fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

fn wait_stopped(rt: &Runtime, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.state(id).unwrap()["status"] != "stopped" {
        assert!(Instant::now() < deadline, "{id} did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fails_with(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "unexpected success");
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in: {}",
        stderr(out)
    );
}

#[test]
fn every_hook_runs_in_order_with_the_state() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/true"]);
    let log = b.path().join("hooks.log");
    b.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["annotations"] = json!({"org.test": "yes"});
        c["hooks"] = json!({
            "prestart": [logging_hook("prestart", &log)],
            "createRuntime": [logging_hook("createRuntime", &log)],
            "createContainer": [logging_hook("createContainer", &log)],
            // Runs inside the container: its path and log resolve in the rootfs.
            "startContainer": [logging_hook("startContainer", Path::new("/start.log"))],
            "poststart": [logging_hook("poststart", &log)],
            "poststop": [logging_hook("poststop", &log)],
        });
    });
    ok(&rt.create(&b, "hk", &[]));
    let pid = rt.state("hk").unwrap()["pid"].as_i64().unwrap();
    ok(&rt.run(&["start", "hk"]));
    wait_stopped(&rt, "hk");
    ok(&rt.run(&["delete", "hk"]));

    let parse = |text: &str| -> Vec<(String, Value, String)> {
        text.lines()
            .map(|l| {
                let (name, rest) = l.split_once(' ').unwrap();
                let (json, var) = rest.rsplit_once(' ').unwrap();
                (
                    name.to_owned(),
                    serde_json::from_str(json).unwrap(),
                    var.to_owned(),
                )
            })
            .collect()
    };
    let host = parse(&std::fs::read_to_string(&log).unwrap());
    let names: Vec<&str> = host.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
    let statuses: Vec<&str> = host
        .iter()
        .map(|(_, s, _)| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["creating", "creating", "creating", "running", "stopped"]
    );
    for (name, st, var) in &host {
        assert_eq!(st["id"], "hk");
        assert_eq!(st["annotations"]["org.test"], "yes");
        assert_eq!(
            st["bundle"],
            b.path().canonicalize().unwrap().to_str().unwrap()
        );
        assert_eq!(var, &format!("v-{name}"));
        if name != "poststop" {
            assert_eq!(st["pid"], pid, "{name}");
        }
    }
    let inside = parse(&std::fs::read_to_string(b.rootfs().join("start.log")).unwrap());
    assert_eq!(inside.len(), 1);
    assert_eq!(inside[0].0, "startContainer");
    assert_eq!(inside[0].1["status"], "created");
    assert!(rt.is_empty());
}

#[test]
fn failing_create_hooks_fail_create_and_leave_nothing() {
    let rt = Runtime::new();
    for list in ["prestart", "createRuntime", "createContainer"] {
        let b = TestBundle::new(&["/bin/true"]);
        b.edit(|c| {
            c["hooks"][list] = json!([sh_hook("true"), sh_hook("echo boom >&2; exit 3")]);
        });
        let out = rt.create(&b, "bad", &[]);
        fails_with(
            &out,
            &format!("hook {list}[1] /bin/sh failed: exit status 3, stderr: boom"),
        );
        assert!(rt.is_empty(), "{list}: state left behind");
    }
}

#[test]
fn a_hanging_hook_times_out() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/true"]);
    b.edit(|c| {
        let mut h = sh_hook("sleep 30");
        h["timeout"] = json!(1);
        c["hooks"]["createRuntime"] = json!([h]);
    });
    let started = Instant::now();
    let out = rt.create(&b, "slow", &[]);
    fails_with(
        &out,
        "hook createRuntime[0] /bin/sh failed: timed out after 1s",
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(rt.is_empty());
}

#[test]
fn failing_start_hooks_fail_start() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    b.edit(|c| c["hooks"]["startContainer"] = json!([sh_hook("exit 4")]));
    ok(&rt.create(&b, "sc", &[]));
    let out = rt.run(&["start", "sc"]);
    fails_with(&out, "hook startContainer[0] /bin/sh failed: exit status 4");
    wait_stopped(&rt, "sc");
    ok(&rt.run(&["delete", "sc"]));

    let b = TestBundle::new(&["/bin/sleep", "100"]);
    b.edit(|c| c["hooks"]["poststart"] = json!([sh_hook("exit 5")]));
    let out = rt.run_bundle(&b, "ps");
    fails_with(&out, "hook poststart[0] /bin/sh failed: exit status 5");
    assert!(rt.is_empty());
}

#[test]
fn poststop_failures_are_only_logged() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/true"]);
    b.edit(|c| c["hooks"]["poststop"] = json!([sh_hook("exit 6")]));
    let out = rt.run_bundle(&b, "pst");
    ok(&out);
    assert!(
        stderr(&out).contains("hook poststop[0] /bin/sh failed: exit status 6"),
        "{}",
        stderr(&out)
    );
    assert!(rt.is_empty());

    let b = TestBundle::new(&["/bin/true"]);
    b.edit(|c| c["hooks"]["prestart"] = json!([{"path": "relative/hook"}]));
    fails_with(&rt.create(&b, "rel", &[]), "hooks.prestart[0].path");
}
