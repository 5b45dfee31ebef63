//! Capability sets from `process.capabilities`, applied with the `caps` crate in the only
//! order the kernel accepts: the bounding set is reduced first (needs `CAP_SETPCAP`, so
//! before the user switch); after the switch, effective is shrunk into the target
//! permitted set, then permitted, inheritable, effective and finally ambient are set
//! (an ambient capability must already be permitted and inheritable; one that is not is
//! skipped with an info log, which is what runc and crun do with runc's default spec).
//!
//! Capabilities the running kernel does not know are skipped with a warning, as runc
//! does, so a config written for a newer kernel still runs.

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// A failed capability operation.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// A capability name the `caps` crate does not know.
    #[error("process.capabilities: unknown capability {name}")]
    Unknown {
        /// The name.
        name: String,
    },
    /// Setting a set failed.
    #[error("set {set} capabilities {caps:?}: {source}")]
    Apply {
        /// Which set.
        set: &'static str,
        /// The requested contents.
        caps: Vec<String>,
        /// The underlying error.
        source: caps::errors::CapsError,
    },
}

/// The five sets, as `caps` sets restricted to what this kernel supports.
#[derive(Debug, Clone, Default)]
pub struct CapabilitySets {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

fn convert(
    set: &Option<Capabilities>,
    supported: &CapsHashSet,
) -> Result<CapsHashSet, CapabilityError> {
    let mut out = CapsHashSet::new();
    for cap in set.iter().flatten() {
        let name = format!("CAP_{cap}");
        let c: Capability = name
            .parse()
            .map_err(|_| CapabilityError::Unknown { name: name.clone() })?;
        if supported.contains(&c) {
            out.insert(c);
        } else {
            tracing::warn!(capability = %name, "capability not supported by this kernel; skipped");
        }
    }
    Ok(out)
}

fn names(set: &CapsHashSet) -> Vec<String> {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

impl CapabilitySets {
    /// Converts the config's sets (absent sets are empty, as in runc).
    pub fn from_spec(spec: Option<&LinuxCapabilities>) -> Result<Self, CapabilityError> {
        let supported = caps::runtime::thread_all_supported();
        let Some(c) = spec else {
            return Ok(Self::default());
        };
        Ok(Self {
            bounding: convert(c.bounding(), &supported)?,
            effective: convert(c.effective(), &supported)?,
            permitted: convert(c.permitted(), &supported)?,
            inheritable: convert(c.inheritable(), &supported)?,
            ambient: convert(c.ambient(), &supported)?,
        })
    }

    /// Drops every capability not in the bounding set. Must run while still privileged.
    pub fn apply_bounding(&self) -> Result<(), CapabilityError> {
        let current = caps::read(None, CapSet::Bounding)
            .map_err(|source| self.err("bounding", &self.bounding, source))?;
        for cap in current.difference(&self.bounding) {
            caps::drop(None, CapSet::Bounding, *cap)
                .map_err(|source| self.err("bounding", &self.bounding, source))?;
        }
        Ok(())
    }

    /// Sets permitted, inheritable, effective and ambient. Runs after the user switch.
    pub fn apply_process_sets(&self) -> Result<(), CapabilityError> {
        let eff_now = caps::read(None, CapSet::Effective)
            .map_err(|source| self.err("effective", &self.effective, source))?;
        let shrunk: CapsHashSet = eff_now.intersection(&self.permitted).copied().collect();
        caps::set(None, CapSet::Effective, &shrunk)
            .map_err(|source| self.err("effective", &shrunk, source))?;
        caps::set(None, CapSet::Permitted, &self.permitted)
            .map_err(|source| self.err("permitted", &self.permitted, source))?;
        caps::set(None, CapSet::Inheritable, &self.inheritable)
            .map_err(|source| self.err("inheritable", &self.inheritable, source))?;
        caps::set(None, CapSet::Effective, &self.effective)
            .map_err(|source| self.err("effective", &self.effective, source))?;
        caps::clear(None, CapSet::Ambient)
            .map_err(|source| self.err("ambient", &self.ambient, source))?;
        for cap in &self.ambient {
            // The kernel only allows ambient capabilities that are both permitted and
            // inheritable. runc's default spec lists ambient capabilities without an
            // inheritable set; like runc and crun, such entries are skipped (and logged).
            if !self.permitted.contains(cap) || !self.inheritable.contains(cap) {
                tracing::info!(capability = %cap, "ambient capability skipped: not in both the permitted and inheritable sets");
                continue;
            }
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(|source| self.err("ambient", &self.ambient, source))?;
        }
        Ok(())
    }

    fn err(
        &self,
        set: &'static str,
        caps: &CapsHashSet,
        source: caps::errors::CapsError,
    ) -> CapabilityError {
        CapabilityError::Apply {
            set,
            caps: names(caps),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_oci_names() {
        let spec: LinuxCapabilities = serde_json::from_value(serde_json::json!({
            "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_KILL"]
        }))
        .unwrap();
        let sets = CapabilitySets::from_spec(Some(&spec)).unwrap();
        assert!(sets.bounding.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert_eq!(sets.effective.len(), 1);
        assert!(sets.ambient.is_empty());
    }
}
