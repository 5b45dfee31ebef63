//! `spec [--bundle DIR] [--rootless]`: writes runc's default `config.json` (runc 1.2's
//! defaults: a cgroup namespace and a read-only cgroup mount, `terminal: true`, three
//! capabilities, the usual masked and read-only paths), tab-indented like runc's. It
//! refuses to overwrite an existing file, as runc does. `--rootless` applies runc's
//! rootless changes (user namespace with the caller's ids mapped to root, no network
//! namespace, `/sys` bound from the host, no `gid=5` on devpts, no resources).

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::SpecArgs;
use crate::error::Error;

/// runc's default spec.
pub fn default_spec() -> Value {
    json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
                "/sys/devices/virtual/powercap"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// Applies runc's rootless changes to a default spec.
pub fn make_rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = &mut spec["linux"];
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
        obj.insert(
            "uidMappings".into(),
            json!([{ "containerID": 0, "hostID": uid, "size": 1 }]),
        );
        obj.insert(
            "gidMappings".into(),
            json!([{ "containerID": 0, "hostID": gid, "size": 1 }]),
        );
    }
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({ "type": "user" }));
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({ "destination": "/sys", "type": "none", "source": "/sys",
                             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
            }
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| o != "gid=5");
            }
        }
    }
}

/// Renders JSON with tab indentation, like runc's `spec`.
pub fn to_tabbed_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser).expect("JSON value serialises");
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

/// Writes `<bundle>/config.json`.
pub fn run(args: &SpecArgs, rootless: bool) -> Result<(), Error> {
    let path = args.bundle.join("config.json");
    if path.symlink_metadata().is_ok() {
        return Err(Error::Io {
            step: "refusing to overwrite",
            path,
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        });
    }
    let mut spec = default_spec();
    if rootless {
        make_rootless(
            &mut spec,
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
    }
    write_new(&path, &to_tabbed_json(&spec))
}

fn write_new(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| Error::Io {
            step: "create",
            path: path.to_owned(),
            source,
        })?;
    f.write_all(text.as_bytes()).map_err(|source| Error::Io {
        step: "write",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_as_oci_spec() {
        let s: oci_spec::runtime::Spec = serde_json::from_value(default_spec()).unwrap();
        assert_eq!(s.hostname().as_deref(), Some("runc"));
        let mut r = default_spec();
        make_rootless(&mut r, 1000, 1000);
        let s: oci_spec::runtime::Spec = serde_json::from_value(r).unwrap();
        let l = s.linux().as_ref().unwrap();
        assert!(l.resources().is_none());
        assert_eq!(l.uid_mappings().as_ref().unwrap()[0].host_id(), 1000);
    }
}
