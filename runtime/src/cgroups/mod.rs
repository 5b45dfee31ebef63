//! Cgroups (v2 only), one job per module:
//!
//! - [`manager`]: `--cgroup-manager` selection (`cgroupfs`, the default; `systemd`, not
//!   supported yet; `disabled`) and what `create` does with it.
//! - [`path`]: `linux.cgroupsPath` in its cgroupfs and systemd (`slice:prefix:name`) forms.
//! - [`v2`]: one cgroup directory: checks of the hierarchy, creation with controllers
//!   enabled in every ancestor, joining, listing, killing, removal.
//! - [`v2_resources`]: `linux.resources` → cgroup v2 interface files.
//! - [`device_filter`]: `linux.resources.devices` → a `BPF_PROG_TYPE_CGROUP_DEVICE`
//!   program; [`bpf`]: loading and attaching it.
//! - [`freezer`]: `cgroup.freeze` for pause/resume; [`stats`]: runc's stats JSON.

pub mod bpf;
pub mod device_filter;
pub mod freezer;
pub mod manager;
pub mod path;
pub mod stats;
pub mod v2;
pub mod v2_resources;

use std::path::PathBuf;

pub use manager::{CgroupManager, check_spec_without_cgroups};
pub use v2::Cgroup;

/// Cgroup errors, each naming the file, field or controller involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A manager that is not implemented was asked for.
    #[error(
        "cgroup manager {manager} is not supported yet (use --cgroup-manager cgroupfs, or --cgroup-manager disabled to run without cgroups)"
    )]
    ManagerNotSupported {
        /// The requested manager's name.
        manager: &'static str,
    },
    /// The config asks for a limit that cannot be applied without cgroups.
    #[error(
        "config.json: {field} is set, but cgroups are disabled (--cgroup-manager disabled) so it cannot be enforced"
    )]
    ResourcesWithoutCgroups {
        /// The JSON path of the offending field.
        field: String,
    },
    /// `/sys/fs/cgroup` is not a cgroup2 mount.
    #[error(
        "cgroup manager cgroupfs needs a cgroup v2 (unified) hierarchy at {root}, but it is {found}; run with --cgroup-manager disabled to run without cgroups"
    )]
    NotCgroup2 {
        /// The cgroup root.
        root: PathBuf,
        /// What is mounted there instead.
        found: String,
    },
    /// A controller the config needs cannot be used.
    #[error(
        "{field} needs the {controller} cgroup controller, but {reason}; run with --cgroup-manager disabled to run without cgroups"
    )]
    ControllerUnavailable {
        /// The config field (or unified key) that needs it.
        field: String,
        /// The controller.
        controller: String,
        /// Why it is unavailable (names the file).
        reason: String,
    },
    /// Writing a cgroup file failed.
    #[error("write {value:?} to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Any other I/O on a cgroup path.
    #[error("{step} {path}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A value in the config that cannot be applied as asked.
    #[error("config.json: {field}: {reason}")]
    Invalid {
        /// The JSON path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An invalid cgroupsPath.
    #[error(transparent)]
    Path(#[from] path::CgroupPathError),
    /// Loading or attaching the device filter failed.
    #[error("linux.resources.devices: {step}: {source}{log}")]
    Bpf {
        /// What was being done.
        step: &'static str,
        /// The underlying error.
        source: std::io::Error,
        /// The verifier log, if any (with a leading newline).
        log: String,
    },
    /// The cgroup is already in use by processes that are not ours.
    #[error("cgroup {path} already exists and has processes in it")]
    InUse {
        /// The cgroup directory.
        path: PathBuf,
    },
    /// Waiting for the cgroup to become empty / frozen / thawed timed out.
    #[error("cgroup {path}: timed out after {secs}s waiting for {what}")]
    Timeout {
        /// The cgroup directory.
        path: PathBuf,
        /// What was waited for.
        what: &'static str,
        /// How long.
        secs: u64,
    },
}

impl CgroupError {
    pub(crate) fn io(
        step: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CgroupError::Io { step, path, source }
    }
}
