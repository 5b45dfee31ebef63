//! The crate's error type. Every variant names the path (or fixture) it is
//! about, so a failing test says which file was the problem.

use std::io;
use std::path::PathBuf;

/// What can go wrong while building, reading or copying fixtures.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The busybox binary the rootfs is built from does not exist.
    #[error(
        "busybox binary {path} not found: install Debian's busybox-static (run scripts/install-deps)"
    )]
    BusyboxMissing {
        /// Where busybox was expected.
        path: PathBuf,
    },

    /// The busybox binary is dynamically linked (it has an ELF interpreter), so
    /// it cannot run inside a rootfs that holds nothing else.
    #[error(
        "busybox binary {path} is not statically linked: install Debian's busybox-static (run scripts/install-deps)"
    )]
    BusyboxNotStatic {
        /// The offending binary.
        path: PathBuf,
    },

    /// The busybox binary is not an ELF executable this crate understands.
    #[error("busybox binary {path} is not a valid ELF executable: {reason}")]
    BusyboxNotElf {
        /// The offending binary.
        path: PathBuf,
        /// What was wrong with it.
        reason: &'static str,
    },

    /// `busybox --list-full` failed or printed something unusable.
    #[error("`{path} --list-full` failed: {reason} (run scripts/install-deps)")]
    BusyboxList {
        /// The busybox binary that was run.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A filesystem operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// The operation, e.g. "create directory".
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A JSON document could not be serialised or parsed.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        /// The file being written or read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// An OCI document could not be assembled.
    #[error("cannot assemble OCI {what} for {path}: {source}")]
    Oci {
        /// What was being assembled (e.g. "image manifest").
        what: &'static str,
        /// The fixture it belongs to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: oci_spec::OciSpecError,
    },

    /// A layer description is inconsistent (e.g. a path that is not relative).
    #[error("invalid layer entry {path}: {reason}")]
    InvalidEntry {
        /// The entry's path inside the layer.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl FixtureError {
    /// Builds an [`FixtureError::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FixtureError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = FixtureError> = std::result::Result<T, E>;
