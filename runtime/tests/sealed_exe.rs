//! CVE-2019-5736: a process in the container that grabs the runtime binary through
//! `/proc/<pid>/exe` (while the container's init is still the runtime) cannot write to
//! it once the runtime is gone. The test runs a private copy of the runtime, so a
//! failure would damage only that copy.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Runtime, TestBundle, ok};

fn wait_for_file(p: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(p) {
            if !s.is_empty() {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn container_cannot_write_the_runtime_binary() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let copy: PathBuf = dir.path().join("berth-runtime");
    std::fs::copy(common::BIN, &copy).unwrap();
    let original = std::fs::read(&copy).unwrap();
    let cmd = || {
        let mut c = Command::new(&copy);
        c.arg("--root")
            .arg(rt.root.path())
            .args(["--cgroup-manager", "disabled"]);
        c
    };

    let b = TestBundle::new(&["/bin/sleep", "100"]);
    b.edit(|c| c["root"]["readonly"] = serde_json::json!(false));
    let mut c = cmd();
    c.arg("create").arg("--bundle").arg(b.path()).arg("cve");
    ok(&rt.output_detached(c));
    // While created, the container's pid 1 is the runtime: grab its binary, then try to
    // write it once `start` has replaced pid 1 with the user program.
    let script = "exec 3</proc/1/exe; readlink /proc/1/exe > /tmp/exe; echo ok > /tmp/opened; \
                  while [ ! -e /tmp/go ]; do sleep 0.05; done; \
                  (echo PWNED >> /proc/self/fd/3) 2>/tmp/err && echo WROTE > /tmp/result \
                  || echo DENIED > /tmp/result";
    let mut c = cmd();
    c.args(["exec", "--detach", "cve", "sh", "-c", script]);
    ok(&rt.output_detached(c));
    let rootfs = b.rootfs();
    wait_for_file(&rootfs.join("tmp/opened"));
    let mut c = cmd();
    c.args(["start", "cve"]);
    ok(&rt.output_detached(c));
    std::fs::write(rootfs.join("tmp/go"), "").unwrap();
    let result = wait_for_file(&rootfs.join("tmp/result"));
    let err = std::fs::read_to_string(rootfs.join("tmp/err")).unwrap_or_default();
    assert_eq!(result, "DENIED\n", "{err}");
    let exe = std::fs::read_to_string(rootfs.join("tmp/exe")).unwrap();
    // Either the read-only bind mount (write: EROFS) or the sealed memfd.
    assert!(
        err.contains("Read-only file system") || exe.starts_with("/memfd:berth-runtime"),
        "exe={exe} err={err}"
    );
    assert!(std::fs::read(&copy).unwrap() == original, "binary modified");
    let mut c = cmd();
    c.args(["delete", "--force", "cve"]);
    ok(&rt.output_detached(c));
}
