//! `linux.seccomp`: errno and kill actions, argument conditions, both install points
//! (with and without `noNewPrivileges`), exec getting the filter, podman's default
//! profile, and the unsupported notify action.

mod common;

use common::{Runtime, TestBundle, ok, stderr, stdout};
use serde_json::{Value, json};

fn with_profile(args: &[&str], profile: Value) -> TestBundle {
    let b = TestBundle::new(args);
    b.edit(|c| c["linux"]["seccomp"] = profile);
    b
}

fn deny_mkdir(action: &str) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action, "errnoRet": 1}]
    })
}

#[test]
fn errno_action_denies_mkdir() {
    let rt = Runtime::new();
    let script = "mkdir /dev/shm/x 2>&1; touch /dev/shm/y && echo touched";
    let b = with_profile(&["/bin/sh", "-c", script], deny_mkdir("SCMP_ACT_ERRNO"));
    let out = ok(&rt.run_bundle(&b, "deny"));
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("touched"), "{out}");

    // Without noNewPrivileges the filter is installed while still privileged, before
    // the switch to an unprivileged user.
    b.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    let out = ok(&rt.run_bundle(&b, "deny2"));
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("touched"), "{out}");
}

#[test]
fn kill_process_action() {
    let rt = Runtime::new();
    let b = with_profile(
        &["/bin/mkdir", "/dev/shm/k"],
        deny_mkdir("SCMP_ACT_KILL_PROCESS"),
    );
    // 128 + SIGSYS.
    assert_eq!(rt.run_bundle(&b, "kill").status.code(), Some(128 + 31));
}

#[test]
fn argument_conditions() {
    let rt = Runtime::new();
    // personality(PER_LINUX32 = 8) is refused with EINVAL; personality(0) is not.
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                      "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]
    });
    let script = "linux64 echo ok64; linux32 echo ok32 2>&1; echo done";
    let b = with_profile(&["/bin/sh", "-c", script], profile);
    let out = ok(&rt.run_bundle(&b, "args"));
    assert!(out.contains("ok64"), "{out}");
    assert!(!out.contains("ok32"), "{out}");
    assert!(out.contains("Invalid argument"), "{out}");

    // SCMP_CMP_MASKED_EQ: (arg & 0xff) == 8 matches 0x0008 but not 0.
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]}]
    });
    let b = with_profile(&["/bin/sh", "-c", script], profile);
    let out = ok(&rt.run_bundle(&b, "masked"));
    assert!(out.contains("ok64") && !out.contains("ok32"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
}

#[test]
fn exec_gets_the_containers_filter() {
    let rt = Runtime::new();
    let b = with_profile(&["/bin/sleep", "100"], deny_mkdir("SCMP_ACT_ERRNO"));
    ok(&rt.run_detached(&b, "sx"));
    let mut c = rt.cmd();
    c.args(["exec", "sx", "mkdir", "/dev/shm/e"]);
    let out = rt.output_detached(c);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
    ok(&rt.run(&["delete", "--force", "sx"]));
}

/// podman's profile (containers-common's seccomp.json) as podman turns it into
/// `linux.seccomp` for a container with `caps` on amd64: entries whose `includes` are
/// not met, or whose `excludes` are, are dropped.
fn podman_profile(caps: &[&str]) -> Value {
    let path = "/usr/share/containers/seccomp.json";
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("{path}: {e} (install Debian's golang-github-containers-common)")
    });
    let p: Value = serde_json::from_str(&text).unwrap();
    let has = |list: &Value| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|c| caps.contains(&c.as_str().unwrap())))
    };
    let mut syscalls = Vec::new();
    for s in p["syscalls"].as_array().unwrap() {
        let inc = &s["includes"];
        if inc["caps"].is_array()
            && !inc["caps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| caps.contains(&c.as_str().unwrap()))
        {
            continue;
        }
        if inc["arches"].is_array()
            && !inc["arches"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "amd64")
        {
            continue;
        }
        if has(&s["excludes"]["caps"]) {
            continue;
        }
        let mut s = s.clone();
        let o = s.as_object_mut().unwrap();
        o.remove("includes");
        o.remove("excludes");
        o.remove("comment");
        syscalls.push(s);
    }
    json!({
        "defaultAction": p["defaultAction"],
        "defaultErrnoRet": p["defaultErrnoRet"],
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    })
}

#[test]
fn podmans_default_profile() {
    let rt = Runtime::new();
    // podman's default capabilities (no CAP_SYS_ADMIN).
    let caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETFCAP",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
    ];
    let profile = podman_profile(&caps);
    let b = with_profile(
        &[
            "/bin/sh",
            "-c",
            "ls / | wc -l; unshare -m true 2>&1; mount -t tmpfs none /mnt 2>&1; \
             hostname other 2>&1; echo end",
        ],
        profile.clone(),
    );
    b.edit(|c| {
        // The process gets CAP_SYS_ADMIN, so what refuses sethostname is the profile
        // (podman's profile for a container without it), not the capability check.
        let mut all = caps.to_vec();
        all.push("CAP_SYS_ADMIN");
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(all);
        }
    });
    let out = ok(&rt.run_bundle(&b, "podman"));
    let mut lines = out.lines();
    let entries: u32 = lines.next().unwrap().trim().parse().unwrap();
    assert!(entries > 5, "{out}");
    assert!(
        out.contains("hostname: sethostname: Operation not permitted"),
        "{out}"
    );
    assert!(out.ends_with("end\n"), "{out}");

    // With podman's default capabilities, unshare and mount are refused.
    let b = with_profile(
        &[
            "/bin/sh",
            "-c",
            "unshare -m true || echo unshare-denied; mount -t tmpfs none /mnt || echo mount-denied",
        ],
        profile,
    );
    b.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(caps);
        }
    });
    let out = ok(&rt.run_bundle(&b, "podman2"));
    assert!(
        out.contains("unshare-denied") && out.contains("mount-denied"),
        "{out}"
    );
}

#[test]
fn notify_is_refused_and_leaves_nothing() {
    let rt = Runtime::new();
    let b = with_profile(&["/bin/true"], deny_mkdir("SCMP_ACT_NOTIFY"));
    let out = rt.create(&b, "notify", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("SCMP_ACT_NOTIFY is not supported yet"),
        "{}",
        stderr(&out)
    );
    assert!(rt.is_empty());
}
