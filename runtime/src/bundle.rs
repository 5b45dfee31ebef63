//! Loading a bundle's `config.json` and validating it before anything is created: every
//! problem found here is reported with the field or path it is about, and nothing has
//! been forked, mounted or written yet. Spec fields this runtime does not implement yet
//! are rejected here ("... is not supported yet") instead of being silently ignored.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::rootfs::mount_options;

/// Why a bundle was rejected.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle directory cannot be resolved.
    #[error("bundle {path}: {source}")]
    BundleDir {
        /// The bundle path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// No `config.json` in the bundle.
    #[error("bundle {bundle}: config.json not found")]
    ConfigMissing {
        /// The bundle path.
        bundle: PathBuf,
    },
    /// `config.json` cannot be read.
    #[error("{path}: {source}")]
    ConfigRead {
        /// The config path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `config.json` is not a valid runtime spec.
    #[error("{path}: invalid config: {source}")]
    ConfigInvalid {
        /// The config path.
        path: PathBuf,
        /// The parse error (with line and column).
        source: serde_json::Error,
    },
    /// `ociVersion` has a major version other than 1.
    #[error("config.json: ociVersion {version:?} is not supported (major version must be 1)")]
    UnsupportedVersion {
        /// The version found.
        version: String,
    },
    /// A required field is missing or empty.
    #[error("config.json: {field} is required")]
    MissingField {
        /// The JSON path of the field.
        field: &'static str,
    },
    /// A field has an invalid value.
    #[error("config.json: {field}: {reason}")]
    InvalidField {
        /// The JSON path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The root filesystem directory does not exist or is not a directory.
    #[error("config.json: root.path: rootfs {path} does not exist or is not a directory")]
    RootfsMissing {
        /// The resolved rootfs path.
        path: PathBuf,
    },
    /// A field this runtime does not implement yet is set.
    #[error("config.json: {field} is not supported yet")]
    NotSupported {
        /// The JSON path of the field.
        field: String,
    },
}

/// A loaded, validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute, canonical bundle directory.
    pub dir: PathBuf,
    /// Absolute, canonical rootfs directory.
    pub rootfs: PathBuf,
    /// The parsed config.
    pub spec: Spec,
}

impl Bundle {
    /// Loads `<dir>/config.json` and validates it.
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let dir = std::fs::canonicalize(dir).map_err(|source| BundleError::BundleDir {
            path: dir.to_owned(),
            source,
        })?;
        let config = dir.join("config.json");
        let bytes = match std::fs::read(&config) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BundleError::ConfigMissing { bundle: dir });
            }
            Err(source) => {
                return Err(BundleError::ConfigRead {
                    path: config,
                    source,
                });
            }
        };
        let spec: Spec =
            serde_json::from_slice(&bytes).map_err(|source| BundleError::ConfigInvalid {
                path: config.clone(),
                source,
            })?;
        let rootfs = validate(&dir, &spec)?;
        Ok(Self { dir, rootfs, spec })
    }

    /// Whether the config asks for (or joins) a namespace of type `typ`.
    pub fn has_namespace(&self, typ: LinuxNamespaceType) -> bool {
        namespace_listed(&self.spec, typ)
    }
}

fn namespace_listed(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
}

fn new_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ && n.path().is_none()))
}

fn not_supported(field: &str) -> BundleError {
    BundleError::NotSupported {
        field: field.to_owned(),
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> BundleError {
    BundleError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Validates `spec`; returns the canonical rootfs path.
fn validate(dir: &Path, spec: &Spec) -> Result<PathBuf, BundleError> {
    let version = spec.version();
    if version.split('.').next() != Some("1") {
        return Err(BundleError::UnsupportedVersion {
            version: version.clone(),
        });
    }

    let root = spec
        .root()
        .as_ref()
        .ok_or(BundleError::MissingField { field: "root.path" })?;
    if root.path().as_os_str().is_empty() {
        return Err(BundleError::MissingField { field: "root.path" });
    }
    let rootfs = dir.join(root.path());
    let rootfs = match std::fs::canonicalize(&rootfs) {
        Ok(p) if p.is_dir() => p,
        _ => return Err(BundleError::RootfsMissing { path: rootfs }),
    };

    validate_process(spec)?;
    validate_hooks(spec)?;
    validate_linux(spec)?;
    validate_mounts(spec)?;
    Ok(rootfs)
}

fn validate_process(spec: &Spec) -> Result<(), BundleError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or(BundleError::MissingField { field: "process" })?;
    if process
        .args()
        .as_ref()
        .is_none_or(|a| a.is_empty() || a[0].is_empty())
    {
        return Err(BundleError::MissingField {
            field: "process.args",
        });
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{:?} must be an absolute path", process.cwd()),
        ));
    }
    if process
        .apparmor_profile()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(not_supported("process.apparmorProfile"));
    }
    if process
        .selinux_label()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(not_supported("process.selinuxLabel"));
    }
    if process.io_priority().is_some() {
        return Err(not_supported("process.ioPriority"));
    }
    if process.scheduler().is_some() {
        return Err(not_supported("process.scheduler"));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(not_supported("process.execCPUAffinity"));
    }
    if let Some(env) = process.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') {
                return Err(invalid(
                    format!("process.env[{i}]"),
                    format!("{e:?} is not KEY=VALUE"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_hooks(spec: &Spec) -> Result<(), BundleError> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    let lists = [
        ("hooks.prestart", hooks.prestart()),
        ("hooks.createRuntime", hooks.create_runtime()),
        ("hooks.createContainer", hooks.create_container()),
        ("hooks.startContainer", hooks.start_container()),
        ("hooks.poststart", hooks.poststart()),
        ("hooks.poststop", hooks.poststop()),
    ];
    for (field, list) in lists {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(invalid(
                    format!("{field}[{i}].path"),
                    format!("{:?} must be an absolute path", hook.path()),
                ));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(invalid(
                    format!("{field}[{i}].timeout"),
                    "must be a positive number of seconds",
                ));
            }
            if let Some(e) = hook.env().iter().flatten().find(|e| !e.contains('=')) {
                return Err(invalid(
                    format!("{field}[{i}].env"),
                    format!("{e:?} is not KEY=VALUE"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_linux(spec: &Spec) -> Result<(), BundleError> {
    let Some(linux) = spec.linux() else {
        return Err(BundleError::MissingField { field: "linux" });
    };
    if linux.intel_rdt().is_some() {
        return Err(not_supported("linux.intelRdt"));
    }
    if linux.personality().is_some() {
        return Err(not_supported("linux.personality"));
    }
    if linux.memory_policy().is_some() {
        return Err(not_supported("linux.memoryPolicy"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(not_supported("linux.netDevices"));
    }
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
        return Err(not_supported("linux.mountLabel"));
    }
    if let Some(p) = linux.rootfs_propagation() {
        if !p.is_empty() && mount_options::propagation(p).is_none() {
            return Err(invalid(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}"),
            ));
        }
    }

    let mut seen = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                "linux.namespaces",
                format!("duplicate namespace {}", ns.typ()),
            ));
        }
    }
    if !namespace_listed(spec, LinuxNamespaceType::Mount) {
        return Err(invalid(
            "linux.namespaces",
            "a mount namespace is required (the rootfs is set up inside it)",
        ));
    }
    let user_ns = new_namespace(spec, LinuxNamespaceType::User);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if user_ns && !has_maps {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if has_maps && !user_ns {
        return Err(invalid(
            "linux.uidMappings",
            "id mappings need a new user namespace",
        ));
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
        && !new_namespace(spec, LinuxNamespaceType::Time)
    {
        return Err(invalid(
            "linux.timeOffsets",
            "time offsets need a new time namespace",
        ));
    }
    for (key, _) in linux.sysctl().iter().flatten() {
        validate_sysctl(spec, key)?;
    }
    Ok(())
}

/// Only namespaced sysctls may be set, and only when the container has its own namespace
/// of the matching kind (otherwise the write would change the host).
fn validate_sysctl(spec: &Spec, key: &str) -> Result<(), BundleError> {
    let field = format!("linux.sysctl[{key:?}]");
    if key.is_empty() || key.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
        return Err(invalid(field, "invalid sysctl name"));
    }
    let needs = if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key.starts_with("fs.mqueue.")
        || [
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
        ]
        .contains(&key)
        || ["kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"].contains(&key)
    {
        LinuxNamespaceType::Ipc
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(invalid(
            field,
            "not a namespaced sysctl; it would change the host",
        ));
    };
    if !new_namespace(spec, needs) {
        return Err(invalid(field, format!("needs a new {needs} namespace")));
    }
    Ok(())
}

fn validate_mounts(spec: &Spec) -> Result<(), BundleError> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                format!("{:?} must be an absolute path", m.destination()),
            ));
        }
        if let Some(opts) = m.options() {
            mount_options::parse(opts)
                .map_err(|e| invalid(format!("mounts[{i}].options"), e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bundle(config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("rootfs")).unwrap();
        std::fs::write(d.path().join("config.json"), config).unwrap();
        d
    }

    fn minimal(extra_linux: &str) -> String {
        format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
               "process":{{"args":["/bin/true"],"cwd":"/","user":{{"uid":0,"gid":0}}}},
               "linux":{{"namespaces":[{{"type":"mount"}},{{"type":"pid"}}]{extra_linux}}}}}"#
        )
    }

    #[test]
    fn loads_minimal_bundle() {
        let d = write_bundle(&minimal(""));
        let b = Bundle::load(d.path()).unwrap();
        assert!(b.rootfs.ends_with("rootfs"));
    }

    #[test]
    fn reports_missing_config_and_bad_json() {
        let d = tempfile::tempdir().unwrap();
        let e = Bundle::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("config.json not found"), "{e}");
        std::fs::write(d.path().join("config.json"), "{not json").unwrap();
        let e = Bundle::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("invalid config"), "{e}");
    }

    #[test]
    fn rejects_version_and_sysctl_and_seccomp() {
        let d = write_bundle(&minimal("").replace("1.0.2", "2.0.0"));
        assert!(
            Bundle::load(d.path())
                .unwrap_err()
                .to_string()
                .contains("ociVersion")
        );
        let d = write_bundle(&minimal(r#","sysctl":{"kernel.panic":"1"}"#));
        let e = Bundle::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("kernel.panic"), "{e}");
    }
}
