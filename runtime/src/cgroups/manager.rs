//! `--cgroup-manager` selection and what `create` does with it.
//!
//! - `cgroupfs` (the default, as in runc): the container gets its own cgroup v2 directory
//!   (see [`super::path`]), created with the controllers its resources need, limits
//!   written ([`super::v2_resources`]) and the device filter attached
//!   ([`super::device_filter`]) before any container process joins it. A host whose
//!   `/sys/fs/cgroup` is not a cgroup2 mount, or that lacks a needed controller, makes
//!   `create` fail with an error naming the problem.
//! - `systemd` (`--systemd-cgroup`): not supported yet (no systemd D-Bus client); the
//!   `slice:prefix:name` cgroupsPath form is parsed and validated first.
//! - `disabled`: no cgroup is created, joined or written. Because nothing can enforce
//!   them, a config that asks for resource limits is rejected, naming the first
//!   offending field. Device-cgroup rules are accepted and logged (info level): they are
//!   in every runc/containerd default spec (a deny-all rule), and the container can still
//!   only reach the device nodes this runtime creates in its `/dev`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxResources, Spec};

use super::device_filter::{self, Insn};
use super::path::{self as cgpath, SystemdPath};
use super::v2::{self, Cgroup};
use super::v2_resources::{self, Setting};
use super::{CgroupError, bpf};

/// How cgroups are managed for containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CgroupManager {
    /// Direct cgroup v2 filesystem writes.
    Cgroupfs,
    /// Through systemd (not supported yet).
    Systemd,
    /// No cgroups at all.
    Disabled,
}

impl CgroupManager {
    /// The manager's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            CgroupManager::Cgroupfs => "cgroupfs",
            CgroupManager::Systemd => "systemd",
            CgroupManager::Disabled => "disabled",
        }
    }
}

/// Everything `create` will do to the container's cgroup, computed and validated before
/// anything is written.
#[derive(Debug, Clone)]
pub struct CgroupPlan {
    /// The cgroup, relative to the cgroup root (starts with `/`).
    pub rel: PathBuf,
    /// The resource writes.
    pub settings: Vec<Setting>,
    /// The device filter.
    pub device_program: Vec<Insn>,
}

/// Decides what `manager` does for the container `id` of `spec`: `None` with cgroups
/// disabled (after checking the spec asks for no limits), a plan with `cgroupfs`.
pub fn plan(
    manager: CgroupManager,
    spec: &Spec,
    id: &str,
) -> Result<Option<CgroupPlan>, CgroupError> {
    let linux = spec.linux().as_ref();
    let cgroups_path = linux.and_then(|l| l.cgroups_path().as_deref());
    match manager {
        CgroupManager::Disabled => {
            check_spec_without_cgroups(spec)?;
            Ok(None)
        }
        CgroupManager::Systemd => {
            SystemdPath::parse(cgroups_path.and_then(Path::to_str), id)?;
            Err(CgroupError::ManagerNotSupported { manager: "systemd" })
        }
        CgroupManager::Cgroupfs => {
            v2::check_root()?;
            let settings = match linux.and_then(|l| l.resources().as_ref()) {
                Some(res) => v2_resources::plan(res)?,
                None => Vec::new(),
            };
            let rules = device_filter::rules_for_spec(spec)?;
            let own = std::fs::read_to_string("/proc/self/cgroup")
                .map_err(CgroupError::io("read", "/proc/self/cgroup"))?;
            let own = cgpath::parse_proc_cgroup(&own)?;
            Ok(Some(CgroupPlan {
                rel: cgpath::fs_path(cgroups_path, id, &own),
                settings,
                device_program: device_filter::assemble(&rules),
            }))
        }
    }
}

impl CgroupPlan {
    /// Creates the cgroup, writes the limits and attaches the device filter. On failure
    /// the cgroup is removed again.
    pub fn apply(&self) -> Result<Cgroup, CgroupError> {
        let cg = Cgroup::create(&self.rel, &v2_resources::needs(&self.settings))?;
        let result = v2_resources::apply(&cg, &self.settings)
            .and_then(|()| bpf::attach_device_filter(cg.dir(), &self.device_program));
        match result {
            Ok(()) => Ok(cg),
            Err(e) => {
                if let Err(e2) = cg.destroy() {
                    tracing::warn!(error = %e2, "removing the cgroup of the failed container");
                }
                Err(e)
            }
        }
    }
}

/// Checks that `spec` asks for nothing the disabled mode would silently drop.
pub fn check_spec_without_cgroups(spec: &Spec) -> Result<(), CgroupError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if let Some(path) = linux.cgroups_path() {
        tracing::info!(path = %path.display(), "linux.cgroupsPath ignored: cgroups are disabled");
    }
    let Some(res) = linux.resources() else {
        return Ok(());
    };
    if let Some(field) = first_limit(res) {
        return Err(CgroupError::ResourcesWithoutCgroups {
            field: format!("linux.resources.{field}"),
        });
    }
    if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        tracing::info!(
            "linux.resources.devices rules are not enforced: cgroups are disabled; \
             the container only has the device nodes created in its /dev"
        );
    }
    Ok(())
}

fn first_limit(res: &LinuxResources) -> Option<&'static str> {
    if let Some(m) = res.memory() {
        let set = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.kernel().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some();
        if set {
            return Some("memory");
        }
    }
    if let Some(c) = res.cpu() {
        let set = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.idle().is_some()
            || c.burst().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.cpus().as_ref().is_some_and(|s| !s.is_empty())
            || c.mems().as_ref().is_some_and(|s| !s.is_empty());
        if set {
            return Some("cpu");
        }
    }
    if res.pids().is_some() {
        return Some("pids");
    }
    if let Some(b) = res.block_io() {
        let set = b.weight().is_some()
            || b.leaf_weight().is_some()
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || b.throttle_read_bps_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            || b.throttle_write_bps_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            || b.throttle_read_iops_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty())
            || b.throttle_write_iops_device()
                .as_ref()
                .is_some_and(|v| !v.is_empty());
        if set {
            return Some("blockIO");
        }
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|v| !v.is_empty())
    {
        return Some("hugepageLimits");
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|v| !v.is_empty()) {
            return Some("network");
        }
    }
    if res.rdma().as_ref().is_some_and(|v| !v.is_empty()) {
        return Some("rdma");
    }
    if res.unified().as_ref().is_some_and(|v| !v.is_empty()) {
        return Some("unified");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(resources: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": { "resources": resources }
        }))
        .unwrap()
    }

    #[test]
    fn device_rules_alone_are_accepted() {
        let s = spec(serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]}));
        check_spec_without_cgroups(&s).unwrap();
    }

    #[test]
    fn limits_are_rejected_naming_the_field() {
        let s = spec(serde_json::json!({"memory": {"limit": 1048576}}));
        let e = check_spec_without_cgroups(&s).unwrap_err().to_string();
        assert!(e.contains("linux.resources.memory"), "{e}");
        let s = spec(serde_json::json!({"pids": {"limit": 10}}));
        let e = check_spec_without_cgroups(&s).unwrap_err().to_string();
        assert!(e.contains("linux.resources.pids"), "{e}");
    }
}
