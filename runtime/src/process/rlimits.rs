//! `process.rlimits` → setrlimit(2), set while init is still privileged (raising a hard
//! limit needs `CAP_SYS_RESOURCE`).

use nix::sys::resource::{Resource, setrlimit};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

/// A failed setrlimit.
#[derive(Debug, thiserror::Error)]
#[error("process.rlimits: setrlimit {typ} (soft {soft}, hard {hard}): {source}")]
pub struct RlimitError {
    /// The limit's name.
    pub typ: String,
    /// Requested soft limit.
    pub soft: u64,
    /// Requested hard limit.
    pub hard: u64,
    /// The underlying error.
    pub source: nix::errno::Errno,
}

fn resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Applies every rlimit in order.
pub fn apply(limits: &[PosixRlimit]) -> Result<(), RlimitError> {
    for l in limits {
        setrlimit(resource(l.typ()), l.soft(), l.hard()).map_err(|source| RlimitError {
            typ: l.typ().to_string(),
            soft: l.soft(),
            hard: l.hard(),
            source,
        })?;
    }
    Ok(())
}
