//! `features`: runc's schema, same keys as runc's own output, and claims that match
//! what the runtime does.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::ok;
use serde_json::Value;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// `runc features`, run like the crun comparison: in a private mount namespace whose
/// /sys/fs/cgroup is an empty read-only tmpfs (runc never sees the host's cgroups).
fn runc_features() -> Value {
    let script = "mount -t tmpfs -o ro,size=4k,mode=755 no-cgroups /sys/fs/cgroup && \
                  exec runc features";
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("unshare and runc are installed (scripts/install-deps)");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "runc features: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn same_schema_as_runc() {
    common::require_root();
    let out = Command::new(common::BIN).arg("features").output().unwrap();
    let ours: Value = serde_json::from_str(&ok(&out)).unwrap();
    let theirs = runc_features();
    assert_eq!(keys(&ours), keys(&theirs));
    // runc 1.2 added linux.intelRdt and linux.mountExtensions (Debian's runc is 1.1).
    assert!(keys(&ours["linux"]).is_superset(&keys(&theirs["linux"])));
    // ... and linux.cgroup.rdma.
    assert!(keys(&ours["linux"]["cgroup"]).is_superset(&keys(&theirs["linux"]["cgroup"])));
    assert_eq!(ours["hooks"], theirs["hooks"]);
    // What we claim is what runc has, minus what is not implemented.
    assert_eq!(ours["linux"]["cgroup"]["v2"], true);
    assert_eq!(ours["linux"]["cgroup"]["systemd"], false);
    assert_eq!(ours["linux"]["apparmor"]["enabled"], false);
    assert_eq!(ours["linux"]["seccomp"]["enabled"], true);
    let theirs_ops: BTreeSet<String> = theirs["linux"]["seccomp"]["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let ours_ops: BTreeSet<String> = ours["linux"]["seccomp"]["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ours_ops, theirs_ops);
    let _: oci_spec::runtime::Features = serde_json::from_value(ours).unwrap();
}
