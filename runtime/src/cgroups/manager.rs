//! The cgroup-manager mode. Only `disabled` is implemented: no cgroup is created,
//! joined or written, and the host's `/sys/fs/cgroup` is never touched. `cgroupfs` and
//! `systemd` fail with a clear "not supported yet" error.
//!
//! Because nothing can enforce them, a config that asks for resource limits while cgroups
//! are disabled is rejected, naming the first offending field. Device-cgroup rules
//! (`linux.resources.devices`) are accepted and logged (info level): they are present in every
//! runc/containerd default spec (a deny-all rule), and without a device cgroup the
//! container can still only reach the device nodes this runtime creates in its `/dev`.

use oci_spec::runtime::{LinuxResources, Spec};

/// How cgroups are managed for containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CgroupManager {
    /// Direct cgroupfs writes (not supported yet).
    Cgroupfs,
    /// Through systemd (not supported yet).
    Systemd,
    /// No cgroups at all.
    Disabled,
}

/// Cgroup-related refusals.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A manager other than `disabled` was asked for.
    #[error("cgroup manager {manager} is not supported yet (use --cgroup-manager disabled)")]
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

    /// Fails unless this mode is implemented.
    pub fn ensure_supported(self) -> Result<(), CgroupError> {
        match self {
            CgroupManager::Disabled => Ok(()),
            other => Err(CgroupError::ManagerNotSupported {
                manager: other.name(),
            }),
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

    #[test]
    fn only_disabled_is_supported() {
        assert!(CgroupManager::Disabled.ensure_supported().is_ok());
        let e = CgroupManager::Cgroupfs
            .ensure_supported()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cgroup manager cgroupfs is not supported yet"),
            "{e}"
        );
    }
}
