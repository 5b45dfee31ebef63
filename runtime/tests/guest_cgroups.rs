//! Cgroup v2 support, tested for real inside berth's cgroup-v2 VM (built with the `vm`
//! feature, run by `berth-vm-tests`): limits written and enforced, the device filter,
//! pause/resume, ps, update, events, kill --all, cgroup paths, cleanup, and failures that
//! leave nothing behind. Every test starts with [`common::require_guest`] (through
//! `Runtime::with_cgroups`), so a run on the build host fails before touching cgroups.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Runtime, TestBundle, ok, stderr, stdout};

use serde_json::{Value, json};

const CG: &str = "/sys/fs/cgroup";

fn cg_dir(rel: &str) -> PathBuf {
    Path::new(CG).join(rel.trim_start_matches('/'))
}

fn cg_read(rel: &str, file: &str) -> String {
    let p = cg_dir(rel).join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_owned()
}

fn flat_key(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text:?}"))
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(rt: &Runtime, id: &str) -> String {
    rt.state(id).map_or_else(
        |o| panic!("state {id}: {}", stderr(&o)),
        |v| v["status"].as_str().unwrap().to_owned(),
    )
}

/// Pids of live processes whose command line contains `needle`.
fn procs_with_arg(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if cmd.split(|b| *b == 0).any(|a| a == needle.as_bytes()) {
                out.push(pid);
            }
        }
    }
    out
}

fn set_resources(b: &TestBundle, res: Value) {
    b.edit(|c| {
        let r = &mut c["linux"]["resources"];
        for (k, v) in res.as_object().unwrap() {
            r[k] = v.clone();
        }
    });
}

fn fails_with(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "unexpected success: {}", stdout(out));
    let err = stderr(out);
    assert!(err.contains(needle), "expected {needle:?} in stderr: {err}");
}

#[test]
fn memory_limit_inside_and_on_the_host() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "cat /sys/fs/cgroup/memory.max /proc/self/cgroup; \
         grep ' /sys/fs/cgroup ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1",
    ]);
    set_resources(
        &b,
        json!({"memory": {"limit": 67108864, "reservation": 33554432}}),
    );
    assert_eq!(
        ok(&rt.run_bundle(&b, "mem1")),
        "67108864\n0::/\ncgroup2 ro\n"
    );
    assert!(!cg_dir("mem1").exists(), "run removes the cgroup");

    let b = TestBundle::new(&["/bin/sleep", "100"]);
    set_resources(
        &b,
        json!({"memory": {"limit": 67108864, "reservation": 33554432}}),
    );
    ok(&rt.run_detached(&b, "mem2"));
    let pid = rt.state("mem2").unwrap()["pid"].as_i64().unwrap();
    assert_eq!(cg_read("mem2", "memory.max"), "67108864");
    assert_eq!(cg_read("mem2", "memory.low"), "33554432");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        "0::/mem2\n"
    );
    assert_eq!(status(&rt, "mem2"), "running");
    ok(&rt.run(&["delete", "--force", "mem2"]));
    assert!(!cg_dir("mem2").exists(), "delete removes the cgroup");
    assert!(rt.is_empty());
}

/// Without a cgroup namespace, the cgroup mount is a bind of the container's own cgroup
/// directory (runc does the same), so the container still sees only its own limits.
#[test]
fn without_cgroupns_the_container_cgroup_is_bound() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "cat /sys/fs/cgroup/memory.max /proc/self/cgroup; ls /sys/fs/cgroup | grep -c cgroup.procs",
    ]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup");
    });
    set_resources(&b, json!({"memory": {"limit": 41943040}}));
    assert_eq!(ok(&rt.run_bundle(&b, "bind")), "41943040\n0::/bind\n1\n");
}

#[test]
fn memory_hog_is_oom_killed() {
    let rt = Runtime::with_cgroups();
    // dd allocates its 128 MiB buffer and fills it from /dev/zero.
    let b = TestBundle::new(&[
        "/bin/dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=128M",
        "count=1",
    ]);
    set_resources(&b, json!({"memory": {"limit": 33554432}}));
    let out = rt
        .cmd()
        .args(["run", "--keep", "--bundle"])
        .arg(b.path())
        .arg("oom")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let events = cg_read("oom", "memory.events");
    assert!(flat_key(&events, "oom_kill") >= 1, "{events}");
    ok(&rt.run(&["delete", "oom"]));
    assert!(!cg_dir("oom").exists());

    // `events` reports the OOM kill of a process while the container keeps running.
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.1; done; \
         dd if=/dev/zero of=/dev/null bs=128M count=1; sleep 100",
    ]);
    b.edit(|c| c["root"]["readonly"] = json!(false));
    set_resources(&b, json!({"memory": {"limit": 33554432}}));
    ok(&rt.run_detached(&b, "oomev"));
    let mut child = rt
        .cmd()
        .args(["events", "--interval", "10s", "oomev"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["type"], "stats");
    std::fs::write(b.rootfs().join("tmp/go"), "").unwrap();
    wait_for("the OOM kill", Duration::from_secs(30), || {
        flat_key(&cg_read("oomev", "memory.events"), "oom_kill") >= 1
    });
    let oom: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(oom, json!({"type": "oom", "id": "oomev"}));
    assert_eq!(status(&rt, "oomev"), "running");
    ok(&rt.run(&["kill", "oomev", "KILL"]));
    child.wait().unwrap();
    ok(&rt.run(&["delete", "oomev"]));

    // The same program fits without the limit.
    let b = TestBundle::new(&[
        "/bin/dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=16M",
        "count=1",
    ]);
    set_resources(&b, json!({"memory": {"limit": 67108864}}));
    ok(&rt.run_bundle(&b, "nooom"));
}

#[test]
fn pids_limit_is_enforced() {
    let rt = Runtime::with_cgroups();
    // The inner shell dies when fork fails; the outer one (init) then reads the cgroup
    // files with builtins only, since it could not fork either until the sleeps exit.
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "sh -c 'i=0; while [ $i -lt 12 ]; do sleep 1 & i=$((i+1)); done; echo all-forked' 2>&1; \
         read max < /sys/fs/cgroup/pids.max; echo \"pids.max $max\"; \
         while read k v; do [ $k = max ] && echo \"events $v\"; done < /sys/fs/cgroup/pids.events",
    ]);
    set_resources(&b, json!({"pids": {"limit": 5}}));
    let out = rt.run_bundle(&b, "pids");
    let text = stdout(&out);
    assert!(text.contains("can't fork"), "{text}");
    assert!(!text.contains("all-forked"), "{text}");
    assert!(text.contains("pids.max 5\n"), "{text}");
    let events: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("events "))
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    assert!(events >= 1, "{text}");
    assert!(!cg_dir("pids").exists());
}

#[test]
fn cpu_weight_max_and_cpuset_are_converted() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "cd /sys/fs/cgroup && cat cpu.weight cpu.max cpu.max.burst cpuset.cpus cpuset.mems; \
         grep Cpus_allowed_list /proc/self/status",
    ]);
    set_resources(
        &b,
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 10000,
                       "cpus": "1", "mems": "0"}}),
    );
    assert_eq!(
        ok(&rt.run_bundle(&b, "cpu")),
        "20\n50000 100000\n10000\n1\n0\nCpus_allowed_list:\t1\n"
    );
    let b = TestBundle::new(&[
        "/bin/cat",
        "/sys/fs/cgroup/cpu.max",
        "/sys/fs/cgroup/cpu.weight",
    ]);
    set_resources(&b, json!({"cpu": {"quota": -1, "shares": 1024}}));
    assert_eq!(ok(&rt.run_bundle(&b, "cpu2")), "max 100000\n39\n");
}

#[test]
fn io_weight_and_hugetlb() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&["/bin/sh", "-c", "cd /sys/fs/cgroup; ls"]);
    set_resources(&b, json!({}));
    let files = ok(&rt.run_bundle(&b, "probe"));
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "cd /sys/fs/cgroup; cat io.bfq.weight 2>/dev/null || cat io.weight; cat hugetlb.2MB.max",
    ]);
    set_resources(
        &b,
        json!({"blockIO": {"weight": 500}, "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}),
    );
    let out = rt.run_bundle(&b, "io");
    if files.lines().any(|f| f == "io.bfq.weight") {
        assert_eq!(ok(&out), "default 500\n4194304\n");
    } else if files.lines().any(|f| f == "io.weight") {
        assert_eq!(ok(&out), "default 4950\n4194304\n");
    } else {
        fails_with(&out, "linux.resources.blockIO.weight");
        assert!(rt.is_empty());
    }
}

#[test]
fn unified_keys_are_written_verbatim_and_validated() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&[
        "/bin/cat",
        "/sys/fs/cgroup/memory.high",
        "/sys/fs/cgroup/pids.max",
    ]);
    set_resources(
        &b,
        json!({"unified": {"memory.high": "50003968", "pids.max": "33"}}),
    );
    assert_eq!(ok(&rt.run_bundle(&b, "uni")), "50003968\n33\n");

    let b = TestBundle::new(&["/bin/true"]);
    set_resources(&b, json!({"unified": {"memory.nosuchfile": "1"}}));
    let out = rt.run_bundle(&b, "uni2");
    fails_with(&out, "linux.resources.unified[\"memory.nosuchfile\"]");
    assert!(!cg_dir("uni2").exists() && rt.is_empty());

    set_resources(&b, json!({"unified": {"../cgroup.procs": "1"}}));
    fails_with(&rt.run_bundle(&b, "uni3"), "no path separators");
    assert!(!cg_dir("uni3").exists() && rt.is_empty());

    set_resources(&b, json!({"unified": {"memory.max": "lots"}}));
    fails_with(
        &rt.run_bundle(&b, "uni4"),
        "write \"lots\" to /sys/fs/cgroup/uni4/memory.max",
    );
    assert!(!cg_dir("uni4").exists() && rt.is_empty());
}

fn with_mknod(b: &TestBundle) {
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
    });
}

#[test]
fn device_filter_denies_what_the_rules_do_not_allow() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "head -c1 /dev/null && echo null-ok; head -c1 /dev/zero | wc -c; \
         mknod /dev/sda b 8 0 && echo mknod-ok; head -c1 /dev/sda; \
         mknod /dev/kmsg c 1 11; echo hi > /dev/kmsg && echo kmsg-ok; true",
    ]);
    with_mknod(&b);
    let out = rt.run_bundle(&b, "dev");
    assert_eq!(stdout(&out), "null-ok\n1\nmknod-ok\n", "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("/dev/sda: Operation not permitted"), "{err}");
    assert!(err.contains("/dev/kmsg: Operation not permitted"), "{err}");

    // An explicit allow rule (after the deny-all) opens /dev/kmsg for writing; a later
    // deny of 8:0 keeps /dev/sda closed.
    b.edit(|c| {
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"},
            {"allow": true, "type": "b", "major": 8, "access": "rwm"},
            {"allow": false, "type": "b", "major": 8, "minor": 0, "access": "rw"}
        ]);
    });
    let out = rt.run_bundle(&b, "dev2");
    assert_eq!(
        stdout(&out),
        "null-ok\n1\nmknod-ok\nkmsg-ok\n",
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("/dev/sda: Operation not permitted"));
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.02; done",
    ]);
    b.edit(|c| c["root"]["readonly"] = json!(false));
    ok(&rt.run_detached(&b, "frz"));
    let counter = b.rootfs().join("tmp/counter");
    let read = || {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for("the counter to start", Duration::from_secs(10), || {
        read() > 2
    });
    ok(&rt.run(&["pause", "frz"]));
    assert_eq!(status(&rt, "frz"), "paused");
    assert_eq!(cg_read("frz", "cgroup.freeze"), "1");
    let a = read();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read(), a, "the counter advanced while paused");
    fails_with(&rt.run(&["pause", "frz"]), "container is paused");
    let list = ok(&rt.run(&["list", "--format", "json"]));
    assert!(list.contains("\"status\":\"paused\""), "{list}");
    ok(&rt.run(&["resume", "frz"]));
    assert_eq!(status(&rt, "frz"), "running");
    wait_for("the counter to advance", Duration::from_secs(10), || {
        read() > a
    });
    fails_with(&rt.run(&["resume", "frz"]), "container is running");
    // A paused container can be force-deleted.
    ok(&rt.run(&["pause", "frz"]));
    fails_with(&rt.run(&["delete", "frz"]), "that is not stopped: paused");
    ok(&rt.run(&["delete", "--force", "frz"]));
    assert!(!cg_dir("frz").exists() && rt.is_empty());
}

#[test]
fn ps_lists_the_containers_processes() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&["/bin/sh", "-c", "sleep 1001 & sleep 1002 & wait"]);
    ok(&rt.run_detached(&b, "ps"));
    let init = rt.state("ps").unwrap()["pid"].as_i64().unwrap() as i32;
    let mut pids: Vec<i32> = Vec::new();
    wait_for("three processes", Duration::from_secs(10), || {
        let out = ok(&rt.run(&["ps", "--format", "json", "ps"]));
        pids = serde_json::from_str(out.trim()).unwrap();
        pids.len() == 3
    });
    assert!(pids.contains(&init), "{pids:?}");
    let mut sleeps = procs_with_arg("1001");
    sleeps.extend(procs_with_arg("1002"));
    for p in sleeps {
        assert!(pids.contains(&p), "{p} not in {pids:?}");
    }
    let table = ok(&rt.run(&["ps", "ps"]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("PID"), "{table}");
    assert_eq!(lines.count(), 3, "{table}");
    let custom = ok(&rt.run(&["ps", "ps", "--", "-o", "pid,args"]));
    assert!(custom.contains("sleep 1002"), "{custom}");
    ok(&rt.run(&["delete", "-f", "ps"]));
    assert!(procs_with_arg("1001").is_empty());
}

#[test]
fn update_changes_the_limits() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    set_resources(
        &b,
        json!({"memory": {"limit": 67108864}, "pids": {"limit": 20}}),
    );
    ok(&rt.run_detached(&b, "upd"));
    ok(&rt.run(&[
        "update",
        "--memory",
        "32m",
        "--pids-limit",
        "10",
        "--cpu-quota",
        "20000",
        "upd",
    ]));
    assert_eq!(cg_read("upd", "memory.max"), "33554432");
    assert_eq!(cg_read("upd", "pids.max"), "10");
    assert_eq!(cg_read("upd", "cpu.max"), "20000 100000");

    let mut child = rt
        .cmd()
        .args(["update", "--resources", "-", "upd"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"memory": {"limit": -1}, "cpu": {"shares": 2048}, "pids": {"limit": -1}}"#)
        .unwrap();
    ok(&child.wait_with_output().unwrap());
    assert_eq!(cg_read("upd", "memory.max"), "max");
    assert_eq!(cg_read("upd", "pids.max"), "max");
    assert_eq!(cg_read("upd", "cpu.weight"), "79");
    fails_with(
        &rt.run(&["update", "--memory", "lots", "upd"]),
        "--memory: invalid size \"lots\"",
    );
    ok(&rt.run(&["delete", "-f", "upd"]));
    fails_with(
        &rt.run(&["update", "--memory", "1m", "upd"]),
        "container does not exist",
    );
}

#[test]
fn events_stats_in_runc_format() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&["/bin/sleep", "100"]);
    set_resources(
        &b,
        json!({"memory": {"limit": 67108864}, "pids": {"limit": 20}}),
    );
    ok(&rt.run_detached(&b, "ev"));
    let out = ok(&rt.run(&["events", "--stats", "ev"]));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], "ev");
    assert_eq!(v["data"]["memory"]["usage"]["limit"], 67108864);
    assert!(
        v["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert_eq!(v["data"]["pids"]["current"], 1);
    assert_eq!(v["data"]["pids"]["limit"], 20);
    assert!(
        v["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0,
        "{v}"
    );
    // Streaming: events keep coming at the interval until the container stops. Wait for
    // the events themselves rather than a fixed time: process starts are slow under TCG.
    let mut child = rt
        .cmd()
        .args(["events", "--interval", "200ms", "ev"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    for _ in 0..2 {
        let line = lines.next().expect("events ended early").unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["type"], "stats", "{event}");
        assert_eq!(event["id"], "ev", "{event}");
    }
    ok(&rt.run(&["kill", "ev", "KILL"]));
    // `events` ends by itself once the container is gone.
    let status = child.wait().unwrap();
    assert!(status.success(), "events exited with {status}");
    ok(&rt.run(&["delete", "ev"]));
}

#[test]
fn kill_all_reaches_every_process_in_the_cgroup() {
    let rt = Runtime::with_cgroups();
    // No pid namespace: only the cgroup tells the container's processes apart.
    let b = TestBundle::new(&["/bin/sh", "-c", "sleep 2001 & sleep 2002 & wait"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    ok(&rt.run_detached(&b, "ka"));
    wait_for("the sleeps", Duration::from_secs(10), || {
        procs_with_arg("2002").len() == 1
    });
    ok(&rt.run(&["kill", "--all", "ka", "TERM"]));
    wait_for("everything to exit", Duration::from_secs(10), || {
        cg_read("ka", "cgroup.procs").is_empty()
    });
    assert!(procs_with_arg("2001").is_empty() && procs_with_arg("2002").is_empty());
    assert_eq!(status(&rt, "ka"), "stopped");
    ok(&rt.run(&["delete", "ka"]));

    ok(&rt.run_detached(&b, "ka2"));
    wait_for("the sleeps", Duration::from_secs(10), || {
        procs_with_arg("2002").len() == 1
    });
    ok(&rt.run(&["kill", "-a", "ka2", "KILL"]));
    wait_for("everything to die", Duration::from_secs(10), || {
        cg_read("ka2", "cgroup.procs").is_empty()
    });
    ok(&rt.run(&["delete", "ka2"]));
    assert!(!cg_dir("ka2").exists() && rt.is_empty());
}

#[test]
fn delete_kills_leftovers_and_removes_the_cgroup() {
    let rt = Runtime::with_cgroups();
    // Without a pid namespace, a background process outlives init: delete must kill it
    // through the cgroup before removing it.
    let b = TestBundle::new(&["/bin/sh", "-c", "sleep 3001 & exit 0"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    ok(&rt.run_detached(&b, "left"));
    wait_for("init to exit", Duration::from_secs(10), || {
        status(&rt, "left") == "stopped"
    });
    assert_eq!(procs_with_arg("3001").len(), 1);
    ok(&rt.run(&["delete", "left"]));
    assert!(procs_with_arg("3001").is_empty());
    assert!(!cg_dir("left").exists() && rt.is_empty());
}

#[test]
fn absolute_and_relative_cgroups_paths() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&["/bin/sh", "-c", "cat /proc/self/cgroup; sleep 100"]);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("/berth-abs/nested/c1"));
    ok(&rt.run_detached(&b, "abs"));
    let pid = rt.state("abs").unwrap()["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        "0::/berth-abs/nested/c1\n"
    );
    let parent = cg_read("/berth-abs/nested", "cgroup.subtree_control");
    assert!(
        parent.contains("memory") && parent.contains("pids"),
        "{parent}"
    );
    ok(&rt.run(&["delete", "-f", "abs"]));
    assert!(!cg_dir("/berth-abs/nested/c1").exists());
    // Like runc, the parents stay.
    assert!(cg_dir("/berth-abs/nested").exists());
    std::fs::remove_dir(cg_dir("/berth-abs/nested")).unwrap();
    std::fs::remove_dir(cg_dir("/berth-abs")).unwrap();

    // Relative: below the parent of the runtime's own cgroup (here the root).
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(own, "0::/\n", "the guest runs tests in the root cgroup");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("berth-rel/../berth-rel2/c2"));
    ok(&rt.run_detached(&b, "rel"));
    assert!(cg_dir("/berth-rel2/c2").join("cgroup.procs").exists());
    ok(&rt.run(&["delete", "-f", "rel"]));
    std::fs::remove_dir(cg_dir("/berth-rel2")).unwrap();
}

#[test]
fn unavailable_controller_fails_and_leaves_nothing() {
    let rt = Runtime::with_cgroups();
    // A parent cgroup with a process in it cannot enable controllers for children (the
    // "no internal processes" rule).
    let busy = cg_dir("/berth-busy");
    std::fs::create_dir_all(&busy).unwrap();
    let mut sleeper = std::process::Command::new("/bin/sleep")
        .arg("4001")
        .spawn()
        .unwrap();
    std::fs::write(busy.join("cgroup.procs"), sleeper.id().to_string()).unwrap();

    let b = TestBundle::new(&["/bin/sleep", "4002"]);
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("/berth-busy/c"));
    set_resources(&b, json!({"memory": {"limit": 67108864}}));
    let out = rt.run_detached(&b, "busy");
    fails_with(
        &out,
        "linux.resources.memory.limit needs the memory cgroup controller",
    );
    fails_with(
        &out,
        "could not be enabled in /sys/fs/cgroup/berth-busy/cgroup.subtree_control",
    );
    fails_with(&out, "--cgroup-manager disabled");
    assert!(!busy.join("c").exists(), "cgroup left behind");
    assert!(rt.is_empty(), "state left behind");
    assert!(procs_with_arg("4002").is_empty(), "process left behind");

    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    wait_for("the busy cgroup to empty", Duration::from_secs(5), || {
        cg_read("/berth-busy", "cgroup.procs").is_empty()
    });
    std::fs::remove_dir(&busy).unwrap();

    // A value the kernel rejects: the error names file and value; nothing is left.
    let b = TestBundle::new(&["/bin/sleep", "4003"]);
    set_resources(&b, json!({"cpu": {"cpus": "99"}}));
    let out = rt.run_detached(&b, "badcpu");
    fails_with(&out, "write \"99\" to /sys/fs/cgroup/badcpu/cpuset.cpus");
    assert!(!cg_dir("badcpu").exists() && rt.is_empty());
    assert!(procs_with_arg("4003").is_empty());

    // init fails after the cgroup was set up (no such program): the cgroup goes too.
    let b = TestBundle::new(&["/no/such/program-4004"]);
    set_resources(&b, json!({"pids": {"limit": 10}}));
    let out = rt.run_detached(&b, "noexe");
    fails_with(&out, "/no/such/program-4004");
    assert!(!cg_dir("noexe").exists() && rt.is_empty());

    // Refused before anything is created.
    set_resources(&b, json!({"memory": {"disableOOMKiller": true}}));
    fails_with(
        &rt.run_detached(&b, "oomk"),
        "linux.resources.memory.disableOOMKiller: not supported on cgroup v2",
    );
    assert!(!cg_dir("oomk").exists() && rt.is_empty());
}

#[test]
fn systemd_manager_is_refused_and_disabled_still_works() {
    let rt = Runtime::with_cgroups();
    let b = TestBundle::new(&["/bin/true"]);
    let out = rt
        .cmd()
        .args(["--systemd-cgroup", "run", "--bundle"])
        .arg(b.path())
        .arg("sd")
        .output()
        .unwrap();
    fails_with(&out, "cgroup manager systemd is not supported yet");
    b.edit(|c| c["linux"]["cgroupsPath"] = json!("bad-systemd-path"));
    let out = rt
        .cmd()
        .args(["--cgroup-manager", "systemd", "run", "--bundle"])
        .arg(b.path())
        .arg("sd")
        .output()
        .unwrap();
    fails_with(&out, "expected \"slice:prefix:name\"");
    assert!(rt.is_empty() && !cg_dir("sd").exists());

    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "cat /proc/self/cgroup; ls /sys/fs/cgroup | wc -l",
    ]);
    let out = rt
        .cmd()
        .args(["--cgroup-manager", "disabled", "run", "--bundle"])
        .arg(b.path())
        .arg("nocg")
        .output()
        .unwrap();
    // No cgroup of its own: the runtime's (the root), and an empty placeholder mount.
    assert_eq!(ok(&out), "0::/\n0\n");
}
