//! `fixtures.json`: the machine-readable list of what a fixture build
//! produced — paths (relative to the fixtures directory), manifest and layer
//! digests, tags — for tests and scripts.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::pretty_json;
use crate::error::{FixtureError, Result};

/// File name of the manifest inside the fixtures directory.
pub const FIXTURES_JSON: &str = "fixtures.json";
/// Bumped when the layout of the fixtures directory changes incompatibly.
pub const FORMAT: u32 = 1;

/// Contents of `fixtures.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixturesManifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The cache key (the fixtures directory's name).
    pub key: String,
    /// The busybox the rootfs was built from.
    pub busybox: BusyboxInfo,
    /// The rootfs directory.
    pub rootfs: String,
    /// Prebuilt runtime bundles by name.
    pub bundles: BTreeMap<String, BundleInfo>,
    /// OCI image layouts by name.
    pub oci_layouts: BTreeMap<String, LayoutInfo>,
    /// `docker save` archives by name.
    pub docker_archives: BTreeMap<String, ArchiveInfo>,
}

/// The input busybox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusyboxInfo {
    /// Host path it was read from.
    pub path: String,
    /// Hex SHA-256 of the binary.
    pub sha256: String,
    /// Number of applets linked into the rootfs.
    pub applets: usize,
}

/// A prebuilt runtime bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleInfo {
    /// Bundle directory.
    pub path: String,
    /// `process.args` of its config.json.
    pub args: Vec<String>,
}

/// An OCI image layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutInfo {
    /// Layout directory.
    pub path: String,
    /// Tags (`org.opencontainers.image.ref.name`) and what they point at.
    pub tags: BTreeMap<String, TagInfo>,
}

/// What a tag in `index.json` points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagInfo {
    /// Media type of the tagged manifest or index.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// The image manifests reachable from it (one, or one per platform).
    pub images: Vec<ImageInfo>,
}

/// One image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Digest of the image manifest.
    pub manifest_digest: String,
    /// `os/architecture`, e.g. `linux/amd64`.
    pub platform: String,
    /// Digest of the image config.
    pub config_digest: String,
    /// Layers, base first.
    pub layers: Vec<LayerInfo>,
}

/// One layer blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Blob media type.
    pub media_type: String,
    /// Blob digest (of the compressed bytes).
    pub digest: String,
    /// Blob size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
}

/// A `docker save` archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    /// Archive file.
    pub path: String,
    /// `RepoTags` of its manifest.json entry.
    pub repo_tags: Vec<String>,
    /// Digest of the image config (its file is `<hex>.json`).
    pub config_digest: String,
    /// Diff IDs (= digests of the `layer.tar`s), base first.
    pub diff_ids: Vec<String>,
    /// Digest of the archive file itself.
    pub sha256: String,
}

impl FixturesManifest {
    /// Writes `dir/fixtures.json`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FIXTURES_JSON);
        let json = pretty_json(self, &path)?;
        fs::write(&path, json).map_err(|e| FixtureError::io("write", &path, e))
    }

    /// Reads `dir/fixtures.json`.
    pub fn read(dir: &Path) -> Result<FixturesManifest> {
        let path = dir.join(FIXTURES_JSON);
        let bytes = fs::read(&path).map_err(|e| FixtureError::io("read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| FixtureError::Json { path, source })
    }
}
