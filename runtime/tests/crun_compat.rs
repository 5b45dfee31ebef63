//! The same bundle under berth-runtime and crun (both with cgroups disabled, each with
//! its own --root): the container must see the same things.
//!
//! crun cannot run on this host's hybrid cgroup layout as is (see [`crun`]); the
//! comparison bundle also drops the cgroup mount and namespace, which crun would try to
//! set up from the host's hierarchy; berth-runtime's cgroup placeholder is covered in run_spec_fields.rs.

mod common;

use std::process::Command;

use common::{Runtime, TestBundle, ok};

const SCRIPT: &str = "echo pid=$$; hostname; grep -E '^Cap(Bnd|Eff|Inh)' /proc/self/status; id; \
    ulimit -n; ls -A /sys/fs/cgroup | wc -l; ls /proc | grep -cE '^[0-9]+$'; \
    touch /x 2>/dev/null && echo rw || echo ro; wc -c < /proc/keys; pwd";

fn comparable_bundle(args: &[&str]) -> TestBundle {
    let b = TestBundle::new(args);
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/sys/fs/cgroup");
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup");
    });
    b
}

fn crun(root: &std::path::Path, bundle: &std::path::Path, id: &str) -> std::process::Output {
    // crun 1.8 refuses to run at all on this host's hybrid cgroup layout (the v2 tree has
    // a controller), even with cgroups disabled. It is run in a private mount namespace
    // whose /sys/fs/cgroup is an empty read-only tmpfs: crun then sees no cgroups, and the
    // host's hierarchy is neither visible to it nor touched.
    let script = "mount -t tmpfs -o ro,size=4k,mode=755 crun-no-cgroups /sys/fs/cgroup && \
                  exec crun --cgroup-manager=disabled --root \"$1\" run --bundle \"$2\" \"$3\"";
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(root)
        .arg(bundle)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("unshare and crun are installed (scripts/install-deps)")
}

#[test]
fn same_view_as_crun() {
    let rt = Runtime::new();
    let b = comparable_bundle(&["/bin/sh", "-c", SCRIPT]);
    let ours = ok(&rt.run_bundle(&b, "cmp"));
    let crun_root = tempfile::tempdir().unwrap();
    let theirs = ok(&crun(crun_root.path(), b.path(), "cmp"));
    assert_eq!(ours, theirs, "berth-runtime vs crun");
}

#[test]
fn same_exit_code_as_crun() {
    let rt = Runtime::new();
    let b = comparable_bundle(&["/bin/sh", "-c", "exit 3"]);
    let crun_root = tempfile::tempdir().unwrap();
    assert_eq!(rt.run_bundle(&b, "e").status.code(), Some(3));
    assert_eq!(crun(crun_root.path(), b.path(), "e").status.code(), Some(3));
}
