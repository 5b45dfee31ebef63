//! Manifests, indexes and image configs: just the fields the store needs,
//! accepting both the OCI and the Docker schema2 media types.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::platform::Platform;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest/index type we accept (the registry `Accept` header).
pub const ACCEPTED_MANIFEST_TYPES: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the target.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Platform (index entries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
}

/// An image manifest (OCI or Docker schema2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Must be 2.
    pub schema_version: u32,
    /// Optional in OCI.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
}

/// An image index / manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Must be 2.
    pub schema_version: u32,
    /// Optional in OCI.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The member manifests.
    pub manifests: Vec<Descriptor>,
}

/// The parts of an image config the store uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `amd64`, …
    #[serde(default)]
    pub architecture: String,
    /// Layer diff IDs.
    pub rootfs: RootFs,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Diff IDs, base first.
    pub diff_ids: Vec<Digest>,
}

/// A fetched manifest-or-index document.
#[derive(Debug, Clone)]
pub enum ManifestOrIndex {
    /// A single-platform image manifest.
    Manifest(Manifest),
    /// A multi-platform index.
    Index(Index),
}

/// Parses a manifest or index. `media_type` is what the registry or the
/// referring descriptor said (may be empty); the document's own
/// `mediaType`, or the presence of `manifests`, decides otherwise.
pub fn parse_manifest(bytes: &[u8], media_type: &str, digest: &Digest) -> Result<ManifestOrIndex> {
    let bad = |reason: String| StoreError::BadManifest {
        what: "manifest",
        digest: digest.clone(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let declared = value
        .get("mediaType")
        .and_then(|v| v.as_str())
        .unwrap_or(media_type)
        .to_owned();
    let is_index = match declared.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        "" => value.get("manifests").is_some(),
        other => {
            return Err(bad(format!(
                "unsupported media type {other:?} (schema1 and artifacts are not images)"
            )));
        }
    };
    if value.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err(bad("schemaVersion is not 2".to_owned()));
    }
    if is_index {
        serde_json::from_value(value)
            .map(ManifestOrIndex::Index)
            .map_err(|e| bad(format!("bad index: {e}")))
    } else {
        serde_json::from_value(value)
            .map(ManifestOrIndex::Manifest)
            .map_err(|e| bad(format!("bad manifest: {e}")))
    }
}

/// Parses an image config and checks it has one diff ID per layer.
pub fn parse_config(bytes: &[u8], digest: &Digest, layers: usize) -> Result<ImageConfig> {
    let config: ImageConfig =
        serde_json::from_slice(bytes).map_err(|e| StoreError::BadManifest {
            what: "config",
            digest: digest.clone(),
            reason: e.to_string(),
        })?;
    if config.rootfs.diff_ids.len() != layers {
        return Err(StoreError::BadManifest {
            what: "config",
            digest: digest.clone(),
            reason: format!(
                "{} diff IDs for {layers} layers",
                config.rootfs.diff_ids.len()
            ),
        });
    }
    Ok(config)
}

/// Picks the index entry for `platform` (first match wins, as containerd).
pub fn select_platform<'a>(
    index: &'a Index,
    platform: &Platform,
    reference: &str,
    index_digest: &Digest,
) -> Result<&'a Descriptor> {
    index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .ok_or_else(|| StoreError::NoMatchingPlatform {
            reference: reference.to_owned(),
            platform: platform.to_string(),
            digest: index_digest.clone(),
            available: index
                .manifests
                .iter()
                .map(|d| {
                    d.platform
                        .as_ref()
                        .map_or("?".to_owned(), |p| p.to_string())
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}
