//! OCI runtime bundles: the runc-like default `config.json` and fresh,
//! writable bundles (a private copy of the rootfs plus a spec) for tests.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxDeviceCgroup, LinuxNamespace, LinuxNamespaceType,
    LinuxResources, Mount, Process, Root, Spec, User,
};

use crate::busybox_rootfs::PATH_ENV;
use crate::digest::pretty_json;
use crate::error::{FixtureError, Result};
use crate::layer::reset_mtime;

/// The runtime-spec version written into `config.json` (what `runc spec` writes).
pub const OCI_VERSION: &str = "1.0.2-dev";
/// The container hostname of every fixture bundle.
pub const HOSTNAME: &str = "berth";
/// The bundle-relative rootfs directory.
pub const ROOTFS_DIR: &str = "rootfs";
/// The bundle's spec file.
pub const CONFIG_JSON: &str = "config.json";

/// The spec `runc spec` generates, with `args` as the process, no terminal,
/// and hostname `berth`.
///
/// Namespaces pid, network, ipc, uts, mount, cgroup; runc's mounts, default
/// capabilities (bounding/effective/permitted), `RLIMIT_NOFILE` 1024,
/// `noNewPrivileges`, a read-only root at `rootfs`, a deny-all device cgroup
/// rule, and runc's masked and read-only paths. Tests on hosts without
/// cgroups drop the cgroup namespace and mount themselves.
pub fn default_spec(args: &[&str]) -> Spec {
    let caps: oci_spec::runtime::Capabilities = [
        Capability::AuditWrite,
        Capability::Kill,
        Capability::NetBindService,
    ]
    .into_iter()
    .collect();
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(caps.clone()))
        .set_effective(Some(caps.clone()))
        .set_permitted(Some(caps))
        .set_inheritable(None)
        .set_ambient(None);

    // `PosixRlimit` has no setters; oci-spec's default process limits are
    // runc's (RLIMIT_NOFILE 1024/1024, checked by the tests), so keep them.
    let mut process = Process::default();
    process
        .set_terminal(Some(false))
        .set_user(User::default())
        .set_args(Some(args.iter().map(|&a| a.to_owned()).collect()))
        .set_env(Some(vec![PATH_ENV.to_owned(), "TERM=xterm".to_owned()]))
        .set_cwd(PathBuf::from("/"))
        .set_capabilities(Some(capabilities))
        .set_no_new_privileges(Some(true));

    let mut root = Root::default();
    root.set_path(PathBuf::from(ROOTFS_DIR))
        .set_readonly(Some(true));

    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false).set_access(Some("rwm".to_owned()));
    let mut resources = LinuxResources::default();
    resources.set_devices(Some(vec![deny_all]));

    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|typ| {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(typ);
        ns
    })
    .collect();

    let mut linux = oci_spec::runtime::Linux::default();
    linux
        .set_resources(Some(resources))
        .set_namespaces(Some(namespaces))
        .set_masked_paths(Some(strings(&[
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ])))
        .set_readonly_paths(Some(strings(&[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ])));

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_owned())
        .set_process(Some(process))
        .set_root(Some(root))
        .set_hostname(Some(HOSTNAME.to_owned()))
        .set_mounts(Some(default_mounts()))
        .set_annotations(None)
        .set_linux(Some(linux));
    spec
}

/// runc's default mounts.
fn default_mounts() -> Vec<Mount> {
    const NOSUID_NOEXEC_NODEV: &[&str] = &["nosuid", "noexec", "nodev"];
    let mount = |destination: &str, typ: &str, source: &str, options: &[&str]| {
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(destination))
            .set_typ(Some(typ.to_owned()))
            .set_source(Some(PathBuf::from(source)))
            .set_options((!options.is_empty()).then(|| strings(options)));
        m
    };
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        NOSUID_NOEXEC_NODEV.iter().chain(extra).copied().collect()
    };
    vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &with(&["mode=1777", "size=65536k"]),
        ),
        mount("/dev/mqueue", "mqueue", "mqueue", NOSUID_NOEXEC_NODEV),
        mount("/sys", "sysfs", "sysfs", &with(&["ro"])),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &with(&["relatime", "ro"]),
        ),
    ]
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|&s| s.to_owned()).collect()
}

/// Writes `spec` as `<bundle>/config.json`: indented, object keys sorted,
/// and capability sets (`HashSet`s in oci-spec, so in random order) sorted,
/// which makes the file reproducible.
pub fn write_spec(bundle: &Path, spec: &Spec) -> Result<PathBuf> {
    let path = bundle.join(CONFIG_JSON);
    let mut value = serde_json::to_value(spec).map_err(|source| FixtureError::Json {
        path: path.clone(),
        source,
    })?;
    if let Some(sets) = value
        .pointer_mut("/process/capabilities")
        .and_then(serde_json::Value::as_object_mut)
    {
        for set in sets.values_mut() {
            if let Some(caps) = set.as_array_mut() {
                caps.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    let json = pretty_json(&value, &path)?;
    fs::write(&path, json).map_err(|e| FixtureError::io("write", &path, e))?;
    Ok(path)
}

/// Creates a bundle at `dest`: a copy of `rootfs` at `dest/rootfs` and
/// `dest/config.json` = [`default_spec`]`(args)`. `dest` may exist but
/// `dest/rootfs` must not.
pub fn make_bundle(rootfs: &Path, dest: &Path, args: &[&str]) -> Result<PathBuf> {
    fs::create_dir_all(dest).map_err(|e| FixtureError::io("create directory", dest, e))?;
    copy_tree(rootfs, &dest.join(ROOTFS_DIR))?;
    write_spec(dest, &default_spec(args))?;
    Ok(dest.to_path_buf())
}

/// Recursively copies `src` to `dst` (which must not exist): directories,
/// regular files and symlinks, with permission bits and epoch mtimes.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).map_err(|e| FixtureError::io("stat", src, e))?;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        fs::create_dir(dst).map_err(|e| FixtureError::io("create directory", dst, e))?;
        let mut children: Vec<_> = fs::read_dir(src)
            .map_err(|e| FixtureError::io("read directory", src, e))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| FixtureError::io("read directory", src, e))?;
        children.sort();
        for name in children {
            copy_tree(&src.join(&name), &dst.join(&name))?;
        }
    } else if file_type.is_symlink() {
        let target = fs::read_link(src).map_err(|e| FixtureError::io("readlink", src, e))?;
        symlink(&target, dst).map_err(|e| FixtureError::io("symlink", dst, e))?;
    } else if file_type.is_file() {
        fs::copy(src, dst).map_err(|e| FixtureError::io("copy to", dst, e))?;
    } else {
        return Err(FixtureError::io(
            "copy",
            src,
            std::io::Error::other("not a file, directory or symlink"),
        ));
    }
    if !file_type.is_symlink() {
        let mode = meta.permissions().mode() & 0o7777;
        fs::set_permissions(dst, fs::Permissions::from_mode(mode))
            .map_err(|e| FixtureError::io("chmod", dst, e))?;
    }
    reset_mtime(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_matches_runc_defaults() {
        let spec = default_spec(&["/bin/true"]);
        let json = serde_json::to_value(&spec).expect("serialise");
        assert_eq!(json["ociVersion"], "1.0.2-dev");
        assert_eq!(json["hostname"], "berth");
        assert_eq!(
            json["root"],
            serde_json::json!({"path": "rootfs", "readonly": true})
        );
        let process = &json["process"];
        assert_eq!(process["args"], serde_json::json!(["/bin/true"]));
        assert_eq!(process["terminal"], false);
        assert_eq!(process["cwd"], "/");
        assert_eq!(process["noNewPrivileges"], true);
        assert_eq!(
            process["rlimits"],
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}])
        );
        let caps = &process["capabilities"];
        for set in ["bounding", "effective", "permitted"] {
            let mut names: Vec<String> =
                serde_json::from_value(caps[set].clone()).expect("capability list");
            names.sort();
            assert_eq!(
                names,
                ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "{set}"
            );
        }
        assert!(caps.get("ambient").is_none() && caps.get("inheritable").is_none());
        let namespaces: Vec<&str> = json["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .map(|ns| ns["type"].as_str().expect("type"))
            .collect();
        assert_eq!(
            namespaces,
            ["pid", "network", "ipc", "uts", "mount", "cgroup"]
        );
        let mounts: Vec<(&str, &str)> = json["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .map(|m| {
                (
                    m["destination"].as_str().expect("dest"),
                    m["type"].as_str().expect("type"),
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                ("/proc", "proc"),
                ("/dev", "tmpfs"),
                ("/dev/pts", "devpts"),
                ("/dev/shm", "tmpfs"),
                ("/dev/mqueue", "mqueue"),
                ("/sys", "sysfs"),
                ("/sys/fs/cgroup", "cgroup"),
            ]
        );
        assert_eq!(
            json["mounts"][1]["options"],
            serde_json::json!(["nosuid", "strictatime", "mode=755", "size=65536k"])
        );
        assert_eq!(
            json["mounts"][2]["options"],
            serde_json::json!([
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5"
            ])
        );
        assert_eq!(
            json["linux"]["maskedPaths"].as_array().map(Vec::len),
            Some(10)
        );
        assert_eq!(
            json["linux"]["readonlyPaths"].as_array().map(Vec::len),
            Some(5)
        );
        assert_eq!(
            json["linux"]["resources"]["devices"],
            serde_json::json!([{"allow": false, "access": "rwm"}])
        );
    }

    #[test]
    fn written_spec_is_reproducible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = fs::read(write_spec(dir.path(), &default_spec(&["/bin/true"])).expect("write"))
            .expect("read");
        for _ in 0..20 {
            let again = write_spec(dir.path(), &default_spec(&["/bin/true"])).expect("write");
            assert_eq!(fs::read(again).expect("read"), first);
        }
        let text = String::from_utf8(first).expect("utf-8");
        let audit = text.find("CAP_AUDIT_WRITE").expect("audit");
        let kill = text.find("CAP_KILL").expect("kill");
        assert!(audit < kill, "capabilities sorted like runc's");
    }

    #[test]
    fn written_spec_round_trips_through_oci_spec() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = default_spec(&["/bin/sleep", "3600"]);
        let path = write_spec(dir.path(), &spec).expect("write");
        let loaded = Spec::load(&path).expect("load");
        assert_eq!(loaded, spec);
    }
}
