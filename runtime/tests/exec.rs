//! `exec` into a running container (host tests, cgroups disabled): namespaces joined,
//! exit status, the process flags, `--process`, `--detach --pid-file`, and refusals.

mod common;

use std::time::{Duration, Instant};

use common::{Runtime, TestBundle, ok, stderr, stdout};
use serde_json::json;

/// A running `sleep` container with hostname `exec-test`.
fn sleeper(rt: &Runtime, id: &str) -> TestBundle {
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    b.edit(|c| c["hostname"] = json!("exec-test"));
    ok(&rt.run_detached(&b, id));
    b
}

fn exec(rt: &Runtime, args: &[&str]) -> std::process::Output {
    let mut c = rt.cmd();
    c.arg("exec").args(args);
    rt.output_detached(c)
}

fn fails_with(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "unexpected success: {}", stdout(out));
    let err = stderr(out);
    assert!(err.contains(needle), "expected {needle:?} in stderr: {err}");
}

fn init_pid(rt: &Runtime, id: &str) -> i64 {
    rt.state(id).unwrap()["pid"].as_i64().unwrap()
}

fn ns(pid: i64, name: &str) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}")).unwrap()
}

#[test]
fn exec_joins_the_containers_namespaces() {
    let rt = Runtime::new();
    let _b = sleeper(&rt, "ns");
    assert_eq!(ok(&exec(&rt, &["ns", "hostname"])), "exec-test\n");
    let ps = ok(&exec(&rt, &["ns", "ps", "-o", "pid,args"]));
    let init = ps
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap_or_else(|| panic!("no pid 1 in {ps}"));
    assert!(init.contains("sleep 100"), "{ps}");
    // Only the container's processes are visible: init, the exec'd ps.
    assert_eq!(ps.lines().count(), 3, "{ps}");
    // The exec'd shell runs in the container's root and mount namespace.
    let out = ok(&exec(
        &rt,
        &["ns", "sh", "-c", "echo $$ > /tmp/pid; ls /bin/busybox"],
    ));
    assert_eq!(out, "/bin/busybox\n");
    ok(&rt.run(&["delete", "--force", "ns"]));
}

#[test]
fn exit_status_propagates() {
    let rt = Runtime::new();
    let _b = sleeper(&rt, "code");
    assert_eq!(
        exec(&rt, &["code", "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(
        exec(&rt, &["code", "sh", "-c", "kill -9 $$"]).status.code(),
        Some(137)
    );
    let missing = exec(&rt, &["code", "no-such-program"]);
    fails_with(&missing, "executable file not found");
    // runc: exec's own failures exit with 255.
    assert_eq!(missing.status.code(), Some(255));
    // The container is unaffected.
    assert_eq!(rt.state("code").unwrap()["status"], "running");
    ok(&rt.run(&["delete", "--force", "code"]));
}

#[test]
fn env_cwd_user_and_groups() {
    let rt = Runtime::new();
    let _b = sleeper(&rt, "flags");
    let out = ok(&exec(
        &rt,
        &[
            "--env",
            "FOO=bar",
            "-e",
            "TERM=dumb",
            "--cwd",
            "/tmp",
            "--user",
            "1000:1000",
            "--additional-gids",
            "10",
            "flags",
            "sh",
            "-c",
            "echo $FOO $TERM $HOME; pwd; id -u; id -g; id -G",
        ],
    ));
    assert_eq!(out, "bar dumb /home/user\n/tmp\n1000\n1000\n1000 10\n");
    // Flags after the id belong to the command (`find -user`), not to exec.
    assert_eq!(
        ok(&exec(&rt, &["flags", "find", "/bin/sh", "-user", "0"])),
        "/bin/sh\n"
    );
    fails_with(
        &exec(&rt, &["--cwd", "/no/such/dir", "flags", "true"]),
        "/no/such/dir",
    );
    fails_with(&exec(&rt, &["--user", "bob", "flags", "true"]), "--user");
    ok(&rt.run(&["delete", "--force", "flags"]));
}

fn cap_eff(status: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn caps_and_no_new_privs() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    b.edit(|c| c["process"]["noNewPrivileges"] = json!(false));
    ok(&rt.run_detached(&b, "caps"));
    let plain = ok(&exec(&rt, &["caps", "cat", "/proc/self/status"]));
    assert_eq!(
        cap_eff(&plain) & (1 << 21),
        0,
        "no CAP_SYS_ADMIN by default"
    );
    assert!(plain.contains("NoNewPrivs:\t0"), "{plain}");
    let more = ok(&exec(
        &rt,
        &[
            "--cap",
            "CAP_SYS_ADMIN",
            "--no-new-privs",
            "caps",
            "cat",
            "/proc/self/status",
        ],
    ));
    assert_ne!(cap_eff(&more) & (1 << 21), 0, "--cap CAP_SYS_ADMIN");
    assert!(more.contains("NoNewPrivs:\t1"), "{more}");
    ok(&rt.run(&["delete", "--force", "caps"]));
}

#[test]
fn process_file_detach_and_pid_file() {
    let rt = Runtime::new();
    let b = sleeper(&rt, "proc");
    let pfile = b.path().join("process.json");
    std::fs::write(
        &pfile,
        serde_json::to_vec(&json!({
            "args": ["/bin/sh", "-c", "echo from-process-file $A; pwd"],
            "env": ["A=x", "PATH=/bin"],
            "cwd": "/etc",
            "user": {"uid": 0, "gid": 0}
        }))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        ok(&exec(&rt, &["--process", pfile.to_str().unwrap(), "proc"])),
        "from-process-file x\n/etc\n"
    );

    let pid_file = b.path().join("exec.pid");
    let started = Instant::now();
    ok(&exec(
        &rt,
        &[
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "proc",
            "sleep",
            "60",
        ],
    ));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "--detach returned"
    );
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let init = init_pid(&rt, "proc");
    for name in ["pid", "mnt", "uts", "ipc", "net"] {
        assert_eq!(ns(pid, name), ns(init, name), "{name} namespace");
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x0060\x00");
    // Deleting the container kills the exec'd process with it (same pid namespace).
    ok(&rt.run(&["delete", "--force", "proc"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == cmdline) {
        assert!(
            Instant::now() < deadline,
            "exec'd process outlived the container"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exec_into_a_user_namespace() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    });
    ok(&rt.run_detached(&b, "userns"));
    let out = ok(&exec(
        &rt,
        &["userns", "sh", "-c", "id -u; cat /proc/self/uid_map"],
    ));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"));
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", "200000", "65536"]);
    ok(&rt.run(&["delete", "--force", "userns"]));
}

#[test]
fn exec_refuses_stopped_and_unknown_containers() {
    let rt = Runtime::new();
    fails_with(&exec(&rt, &["nope", "true"]), "container does not exist");
    let b = TestBundle::new(&["/bin/true"]);
    ok(&rt.run_detached(&b, "done"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.state("done").unwrap()["status"] != "stopped" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    fails_with(
        &exec(&rt, &["done", "true"]),
        "cannot exec in a stopped container",
    );
    let _s = sleeper(&rt, "noargs");
    fails_with(&exec(&rt, &["noargs"]), "no arguments");
    fails_with(
        &exec(&rt, &["--tty", "--detach", "noargs", "true"]),
        "cannot allocate tty if runc will detach without setting console socket",
    );
    ok(&rt.run(&["delete", "--force", "noargs"]));
    ok(&rt.run(&["delete", "done"]));
}
