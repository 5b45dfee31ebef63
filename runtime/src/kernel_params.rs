//! Per-container kernel settings init applies: hostname and domainname (UTS namespace),
//! `linux.sysctl` (written under `/proc/sys` after `pivot_root`, so into the container's
//! namespaces; the bundle check only lets namespaced keys through),
//! `process.oomScoreAdj`, and the session keyring (runc creates a fresh one per
//! container unless `--no-new-keyring`, so containers don't share the caller's keys).

use std::io;
use std::path::PathBuf;

/// A failed kernel setting, naming the field or file.
#[derive(Debug, thiserror::Error)]
pub enum KernelParamError {
    /// sethostname/setdomainname failed.
    #[error("{field}: set to {value:?}: {source}")]
    Uts {
        /// `hostname` or `domainname`.
        field: &'static str,
        /// The value.
        value: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing a /proc file failed.
    #[error("{field}: write {value:?} to {path}: {source}")]
    ProcWrite {
        /// The config field.
        field: String,
        /// The value.
        value: String,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// keyctl failed.
    #[error("join session keyring {name}: {source}")]
    Keyring {
        /// The keyring name.
        name: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Sets the hostname.
pub fn set_hostname(name: &str) -> Result<(), KernelParamError> {
    nix::unistd::sethostname(name).map_err(|e| KernelParamError::Uts {
        field: "hostname",
        value: name.to_owned(),
        source: e.into(),
    })
}

/// Sets the NIS domain name.
pub fn set_domainname(name: &str) -> Result<(), KernelParamError> {
    // SAFETY: the pointer and length describe `name`'s bytes, valid for the call;
    // setdomainname only reads them.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(KernelParamError::Uts {
            field: "domainname",
            value: name.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Writes one sysctl (`net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`).
pub fn write_sysctl(key: &str, value: &str) -> Result<(), KernelParamError> {
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|source| KernelParamError::ProcWrite {
        field: format!("linux.sysctl[{key:?}]"),
        value: value.to_owned(),
        path,
        source,
    })
}

/// Writes `process.oomScoreAdj`.
pub fn set_oom_score_adj(value: i32) -> Result<(), KernelParamError> {
    let path = PathBuf::from("/proc/self/oom_score_adj");
    std::fs::write(&path, value.to_string()).map_err(|source| KernelParamError::ProcWrite {
        field: "process.oomScoreAdj".to_owned(),
        value: value.to_string(),
        path,
        source,
    })
}

/// Joins a new session keyring named `_ses.<id>`. A kernel without keyrings (ENOSYS) is
/// not an error, as in runc.
pub fn join_session_keyring(id: &str) -> Result<(), KernelParamError> {
    let name = format!("_ses.{id}");
    let cname = std::ffi::CString::new(name.clone()).map_err(|_| KernelParamError::Keyring {
        name: name.clone(),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(KEYCTL_JOIN_SESSION_KEYRING, name) reads the NUL-terminated string
    // `cname`, which outlives the call; no memory is written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            cname.as_ptr(),
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOSYS) {
            tracing::warn!("kernel has no keyring support; session keyring not created");
            return Ok(());
        }
        return Err(KernelParamError::Keyring { name, source: err });
    }
    Ok(())
}
