//! `features`: what this build implements, as runc's JSON (the runtime-spec `features`
//! schema). Every entry reflects the code: mount options are the ones
//! [`crate::rootfs::mount_options`] parses, capabilities the ones the `caps` crate
//! knows, seccomp the actions, operators and flags [`crate::seccomp`] compiles.

use serde_json::{Value, json};

use crate::error::Error;

/// Mount options accepted in `mounts[].options` (flags and propagation).
pub const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rbind",
    "relatime",
    "remount",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
];

/// The hooks that run.
pub const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// The features document.
pub fn document() -> Value {
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": oci_spec::runtime::VERSION,
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {
                "v1": false,
                "v2": true,
                "systemd": false,
                "systemdUser": false,
                "rdma": true
            },
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW",
                    "SCMP_ACT_ERRNO",
                    "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG",
                    "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ",
                    "SCMP_CMP_GE",
                    "SCMP_CMP_GT",
                    "SCMP_CMP_LE",
                    "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ",
                    "SCMP_CMP_NE"
                ],
                "archs": ["SCMP_ARCH_X86_64"],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC",
                    "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC",
                    "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
                ]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {
            "org.berth.runtime.version": env!("CARGO_PKG_VERSION")
        }
    })
}

/// Prints the features document.
pub fn run() -> Result<(), Error> {
    println!(
        "{}",
        serde_json::to_string_pretty(&document()).expect("features serialise")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::mount_options;

    #[test]
    fn listed_mount_options_are_parsed_as_options_not_data() {
        for o in MOUNT_OPTIONS {
            let parsed = mount_options::parse(&[(*o).to_owned()]).unwrap();
            assert!(parsed.data.is_empty(), "{o} would be passed as fs data");
        }
    }

    #[test]
    fn document_parses_as_the_spec_schema() {
        let doc = document();
        let f: oci_spec::runtime::Features = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(f.hooks().as_ref().unwrap().len(), 6);
        assert!(
            doc["linux"]["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "CAP_SYS_ADMIN")
        );
    }
}
