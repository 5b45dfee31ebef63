//! `run` in the foreground: exit codes, output, and the spec fields the container sees.

mod common;

use common::{Runtime, TestBundle, ok, stdout};
use serde_json::json;

#[test]
fn true_exits_zero_and_state_is_removed() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/true"]);
    let out = rt.run_bundle(&b, "t");
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert!(
        rt.is_empty(),
        "run without --keep must delete the container"
    );
}

#[test]
fn exit_code_propagates() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh", "-c", "exit 3"]);
    assert_eq!(rt.run_bundle(&b, "t").status.code(), Some(3));
}

#[test]
fn output_arrives_and_process_is_pid_1() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh", "-c", "echo hello from $$"]);
    assert_eq!(ok(&rt.run_bundle(&b, "t")), "hello from 1\n");
}

#[test]
fn hostname_from_spec() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/hostname"]);
    b.edit(|c| c["hostname"] = json!("berth-test"));
    assert_eq!(ok(&rt.run_bundle(&b, "t")), "berth-test\n");
}

#[test]
fn proc_shows_only_the_containers_processes() {
    let rt = Runtime::new();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '",
    ]);
    let pids = ok(&rt.run_bundle(&b, "t"));
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // sh (pid 1) plus the pipeline's own processes.
    assert_eq!(pids[0], 1, "{pids:?}");
    assert!(pids.len() <= 5 && pids.iter().all(|p| *p < 10), "{pids:?}");
}

#[test]
fn readonly_root_is_enforced() {
    let rt = Runtime::new();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "touch /newfile 2>/dev/null && echo writable || echo readonly",
    ]);
    assert_eq!(ok(&rt.run_bundle(&b, "ro")), "readonly\n");
    b.edit(|c| c["root"]["readonly"] = json!(false));
    assert_eq!(ok(&rt.run_bundle(&b, "rw")), "writable\n");
    assert!(b.rootfs().join("newfile").exists());
}

#[test]
fn masked_and_readonly_paths() {
    let rt = Runtime::new();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        // /proc/keys (file: /dev/null over it) and /sys/firmware (dir: empty tmpfs) are in
        // runc's default maskedPaths and exist on this kernel (/proc/kcore may not).
        "wc -c < /proc/keys; ls /sys/firmware | wc -l; \
         (echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null && echo sys-writable || echo sys-readonly",
    ]);
    assert!(
        std::path::Path::new("/proc/keys").exists()
            && std::path::Path::new("/sys/firmware").exists()
    );
    assert_eq!(ok(&rt.run_bundle(&b, "t")), "0\n0\nsys-readonly\n");
}

#[test]
fn capabilities_match_the_spec() {
    let rt = Runtime::new();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
    ]);
    // CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
    let out = ok(&rt.run_bundle(&b, "default"));
    assert!(out.contains("CapBnd:\t0000000020000420"), "{out}");
    assert!(out.contains("CapEff:\t0000000020000420"), "{out}");
    assert!(out.contains("CapInh:\t0000000000000000"), "{out}");

    b.edit(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_CHOWN"],
            "permitted": ["CAP_CHOWN"],
            "inheritable": ["CAP_CHOWN"],
            "ambient": ["CAP_CHOWN"]
        })
    });
    let out = ok(&rt.run_bundle(&b, "custom"));
    assert!(out.contains("CapBnd:\t0000000000000021"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000001"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000001"), "{out}");
}

#[test]
fn user_ids_from_spec() {
    let rt = Runtime::new();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "id -u; id -g; id -G; grep CapEff /proc/self/status; echo $HOME",
    ]);
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10]});
        c["process"]["capabilities"] = json!({});
    });
    let out = ok(&rt.run_bundle(&b, "t"));
    assert_eq!(
        out,
        "1000\n1000\n1000 10\nCapEff:\t0000000000000000\n/home/user\n"
    );
}

#[test]
fn env_and_cwd() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh", "-c", "echo $FOO; pwd"]);
    b.edit(|c| {
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
        c["process"]["cwd"] = json!("/work/dir");
        c["root"]["readonly"] = json!(false);
    });
    assert_eq!(ok(&rt.run_bundle(&b, "t")), "bar baz\n/work/dir\n");
}

#[test]
fn rlimit_nofile() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh", "-c", "ulimit -n; ulimit -Hn"]);
    b.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}])
    });
    assert_eq!(ok(&rt.run_bundle(&b, "t")), "321\n654\n");
}

#[test]
fn no_fd_leaks_into_the_container() {
    let rt = Runtime::new();
    // `ls` itself opens one fd (3) for the directory it lists.
    let b = TestBundle::new(&["/bin/ls", "/proc/self/fd"]);
    assert_eq!(ok(&rt.run_bundle(&b, "t")), "0\n1\n2\n3\n");
}

#[test]
fn preserve_fds_passes_exactly_those_fds() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh", "-c", "cat <&3; ls /proc/self/fd | tr '\\n' ' '"]);
    let payload = b.path().join("payload");
    std::fs::write(&payload, "preserved\n").unwrap();
    let file = std::fs::File::open(&payload).unwrap();
    let raw = file.as_raw_fd();
    let mut cmd = rt.cmd();
    cmd.args(["run", "--preserve-fds", "1", "--bundle"])
        .arg(b.path())
        .arg("t");
    // SAFETY: dup2 and fcntl are async-signal-safe; it runs in the forked child before exec and only
    // installs the already-open payload file as fd 3 (without close-on-exec).
    unsafe {
        cmd.pre_exec(move || {
            // dup2(3, 3) would keep close-on-exec, so clear it explicitly as well.
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    // sh has fds 0-3; `ls` adds its directory fd.
    assert_eq!(ok(&out), "preserved\n0 1 2 3 4 ");
}

#[test]
fn cgroup_mount_is_an_empty_readonly_tmpfs() {
    let rt = Runtime::new();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "ls -A /sys/fs/cgroup | wc -l; grep ' /sys/fs/cgroup ' /proc/mounts | cut -d' ' -f3,4",
    ]);
    let out = ok(&rt.run_bundle(&b, "t"));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let mount = lines.next().unwrap_or_default();
    assert!(mount.starts_with("tmpfs ro,"), "{out}");
}

#[test]
fn dev_has_default_devices_and_symlinks() {
    let rt = Runtime::new();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo -n \"$d \"; done; \
         readlink /dev/ptmx; readlink /dev/fd; echo x > /dev/null && head -c 3 /dev/zero | wc -c",
    ]);
    assert_eq!(
        stdout(&rt.run_bundle(&b, "t")),
        "null zero full random urandom tty pts/ptmx\n/proc/self/fd\n3\n"
    );
}

#[test]
fn no_pivot_works() {
    let rt = Runtime::new();
    let b = TestBundle::new(&["/bin/sh", "-c", "echo $$; ls /"]);
    let out = rt
        .cmd()
        .args(["run", "--no-pivot", "--bundle"])
        .arg(b.path())
        .arg("t")
        .output()
        .unwrap();
    let out = ok(&out);
    assert!(
        out.starts_with("1\n") && out.contains("bin") && out.contains("proc"),
        "{out}"
    );
}

#[test]
fn bind_mounts_with_flags() {
    let rt = Runtime::new();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), "hello\n").unwrap();
    let b = TestBundle::new(&[
        "/bin/sh",
        "-c",
        "cat /mnt/ro/f; touch /mnt/ro/x 2>&1 | sed 's/^[a-z]*: //'; touch /mnt/rw/y && echo rw-ok; \
         grep -E ' /mnt/(ro|rw) ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1",
    ]);
    let source = src.path().to_str().unwrap().to_owned();
    b.edit(|c| {
        c["root"]["readonly"] = serde_json::json!(false);
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": "/mnt/ro", "type": "bind",
            "source": source, "options": ["rbind", "ro", "nosuid"]}));
        mounts.push(serde_json::json!({"destination": "/mnt/rw", "type": "bind",
            "source": source, "options": ["bind"]}));
    });
    assert_eq!(
        ok(&rt.run_bundle(&b, "t")),
        "hello\n/mnt/ro/x: Read-only file system\nrw-ok\n/mnt/ro ro\n/mnt/rw rw\n"
    );
}
