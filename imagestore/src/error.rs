//! The store's error type: one enum, each variant carrying what an operator
//! needs to find the problem (the digest, the path, the image reference, the
//! layer entry).

use std::path::PathBuf;

use crate::digest::Digest;

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "rename", …).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A string is not a valid `sha256:<64 hex>` digest.
    #[error("invalid digest {value:?}: {reason}")]
    InvalidDigest {
        /// The offending string.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch for {expected}: content hashes to {actual}")]
    DigestMismatch {
        /// The digest the content should have had.
        expected: Digest,
        /// What it actually hashed to.
        actual: Digest,
    },
    /// Content was longer or shorter than announced.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}{}", if *.truncated { " (truncated)" } else { " (or more)" })]
    SizeMismatch {
        /// The blob's digest.
        digest: Digest,
        /// Announced size.
        expected: u64,
        /// Bytes seen (when `truncated`), or the first count past `expected`.
        actual: u64,
        /// The content ended early (as opposed to running past the size).
        truncated: bool,
    },
    /// A blob the operation needs is not in the store.
    #[error("blob {digest} is not in the store")]
    BlobNotFound {
        /// The missing blob.
        digest: Digest,
    },
    /// An image reference could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The offending input.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A platform string (`os/arch[/variant]`) could not be parsed.
    #[error("invalid platform {value:?}: expected os/arch[/variant]")]
    InvalidPlatform {
        /// The offending input.
        value: String,
    },
    /// No image with this name is in the store.
    #[error("image {reference} not found in the store")]
    ImageNotFound {
        /// The name that was looked up.
        reference: String,
    },
    /// A manifest, index or config is malformed or unsupported.
    #[error("{what} {digest}: {reason}")]
    BadManifest {
        /// "manifest", "index", "config", …
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// What is wrong with it.
        reason: String,
    },
    /// An index has no manifest for the requested platform.
    #[error(
        "{reference}: no manifest for platform {platform} in index {digest} (has: {available})"
    )]
    NoMatchingPlatform {
        /// The image reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The index digest.
        digest: Digest,
        /// The platforms the index lists.
        available: String,
    },
    /// A layer's media type is not one the store can decompress.
    #[error("layer {digest}: unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// The layer blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A layer tar entry was refused (hostile or malformed layer).
    #[error("layer {digest}: entry {entry:?} refused: {reason}")]
    UnsafeEntry {
        /// The layer blob being unpacked.
        digest: Digest,
        /// The entry's path as written in the tar.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// Unpacking a layer failed for another reason (I/O, corrupt stream).
    #[error("layer {digest}: unpacking entry {entry:?}: {source}")]
    Unpack {
        /// The layer blob being unpacked.
        digest: Digest,
        /// The entry being written ("" when reading the stream itself).
        entry: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The uncompressed layer did not hash to the diff ID in the config.
    #[error(
        "layer {digest}: uncompressed content hashes to {actual}, config says diff ID {expected}"
    )]
    DiffIdMismatch {
        /// The layer blob.
        digest: Digest,
        /// The diff ID from the image config.
        expected: Digest,
        /// What the uncompressed tar hashed to.
        actual: Digest,
    },
    /// The metadata database failed.
    #[error("metadata store {}: {message}", path.display())]
    Metadata {
        /// The database file.
        path: PathBuf,
        /// The redb error, rendered.
        message: String,
    },
    /// A registry refused our credentials (HTTP 401/403).
    #[error("registry {registry}: authentication failed for {reference}: {message}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// The registry's message.
        message: String,
    },
    /// Any other registry/transport failure.
    #[error("registry {registry}: {reference}: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// The image reference.
        reference: String,
        /// What went wrong.
        message: String,
    },
    /// An OCI image layout is malformed or lacks the tag.
    #[error("OCI layout {}: {reason}", path.display())]
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A configuration file (auth file, registries.conf) is malformed.
    #[error("config file {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Every endpoint of a registry is blocked in registries.conf.
    #[error("{reference}: registry blocked by registries.conf")]
    Blocked {
        /// The image reference.
        reference: String,
    },
    /// Mounting or unmounting a container rootfs failed.
    #[error("{op} rootfs of container {container}: {source}")]
    Mount {
        /// "mount overlay at …", "unmount …".
        op: String,
        /// The container ID.
        container: String,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// A container ID is unusable as a directory name, or already has a rootfs.
    #[error("container {container}: {reason}")]
    Container {
        /// The container ID.
        container: String,
        /// What is wrong.
        reason: String,
    },
    /// The operation needs privileges the process lacks.
    #[error("{what} requires root")]
    NeedsRoot {
        /// What was attempted.
        what: String,
    },
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// An [`StoreError::Io`] from an `io::Error`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// An [`StoreError::Io`] from a nix errno.
    pub fn errno(op: &'static str, path: impl Into<PathBuf>, errno: nix::errno::Errno) -> Self {
        Self::io(op, path, std::io::Error::from(errno))
    }
}
