//! `exec` with real cgroups (guest only): the process joins the container's cgroup (and
//! its cgroup namespace), and a paused container refuses exec like runc.

mod common;

use common::{Runtime, TestBundle, ok, stderr, stdout};

fn exec(rt: &Runtime, args: &[&str]) -> std::process::Output {
    let mut c = rt.cmd();
    c.arg("exec").args(args);
    rt.output_detached(c)
}

#[test]
fn exec_joins_the_containers_cgroup() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    ok(&rt.run_detached(&b, "gexec"));
    // Inside: the cgroup namespace is rooted at the container's cgroup.
    assert_eq!(
        ok(&exec(&rt, &["gexec", "cat", "/proc/self/cgroup"])),
        "0::/\n"
    );
    // On the host: a detached exec'd process is in the container's cgroup.
    let pid_file = b.path().join("exec.pid");
    ok(&exec(
        &rt,
        &[
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "gexec",
            "sleep",
            "50",
        ],
    ));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap(),
        "0::/gexec\n"
    );
    let procs = std::fs::read_to_string("/sys/fs/cgroup/gexec/cgroup.procs").unwrap();
    assert!(procs.lines().any(|l| l == pid.trim()), "{procs}");
    ok(&rt.run(&["delete", "--force", "gexec"]));
    assert!(!std::path::Path::new("/sys/fs/cgroup/gexec").exists());
}

#[test]
fn exec_into_a_paused_container_is_refused() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    ok(&rt.run_detached(&b, "gpaused"));
    ok(&rt.run(&["pause", "gpaused"]));
    let out = exec(&rt, &["gpaused", "true"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("cannot exec in a paused container"),
        "{}",
        stderr(&out)
    );
    ok(&rt.run(&["resume", "gpaused"]));
    assert_eq!(ok(&exec(&rt, &["gpaused", "echo", "ok"])), "ok\n");
    ok(&rt.run(&["delete", "--force", "gpaused"]));
}
