//! Import of `docker save` archives (for air-gapped nodes and tests).
//!
//! The archive is read once, sequentially: every payload file is streamed
//! into the blob store under the digest it hashes to (the archive's own
//! names are only used as lookup keys, never as paths). Then
//! `manifest.json` is checked against that content: each layer tar must
//! hash to its diff ID in the config, and a config named `<hex>.json` or
//! `blobs/sha256/<hex>` must hash to that name. A Docker schema2 manifest
//! is synthesised for the image (so every image record has a manifest
//! blob), layers are unpacked (sharing chain IDs with the same layers
//! pulled or imported any other way), and the image is recorded under the
//! requested name or the archive's first `RepoTags` entry. Files the
//! image does not use are left for GC.
//!
//! Not yet: compressed archives (`docker save | gzip`), and archives with
//! several images imported at once.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use tracing::info;

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::manifest::{DOCKER_MANIFEST, Descriptor, Manifest, parse_config};
use crate::metadata::ImageRecord;
use crate::store::{ImageStore, canonical_name};

/// Media type given to the (uncompressed) layers of a docker archive.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Media type of a Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Archive members that are metadata, not image content.
fn is_metadata(path: &str) -> bool {
    path == "manifest.json"
        || path == "repositories"
        || path == "index.json"
        || path == "oci-layout"
        || path.ends_with("/VERSION")
        || path.ends_with("/json")
}

/// The hex a member's name claims, if it is content-addressed.
fn named_hex(path: &str) -> Option<&str> {
    let base = path.strip_prefix("blobs/sha256/").unwrap_or(path);
    let base = base.strip_suffix(".json").unwrap_or(base);
    (base.len() == 64 && base.bytes().all(|b| b.is_ascii_hexdigit())).then_some(base)
}

impl ImageStore {
    /// Imports the image tagged `repo_tag` (or the only image) from the
    /// `docker save` archive at `archive`, recording it as `name` (default:
    /// its first `RepoTags` entry).
    pub fn import_docker_archive(
        &self,
        archive: &Path,
        repo_tag: Option<&str>,
        name: Option<&str>,
    ) -> Result<ImageRecord> {
        let _lease = self.inner.leases.lease();
        let bad = |reason: String| StoreError::Layout {
            path: archive.to_path_buf(),
            reason,
        };
        let file = File::open(archive).map_err(|e| StoreError::io("open", archive, e))?;
        let mut tar = tar::Archive::new(std::io::BufReader::with_capacity(256 * 1024, file));
        let mut members: HashMap<String, (Digest, u64)> = HashMap::new();
        let mut manifest_json = None;
        let read_err = |e| StoreError::io("read", archive, e);
        for entry in tar.entries().map_err(read_err)? {
            let mut entry = entry.map_err(read_err)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = String::from_utf8_lossy(&entry.path_bytes())
                .trim_start_matches("./")
                .to_owned();
            if path == "manifest.json" {
                if entry.size() > 4 << 20 {
                    return Err(bad("manifest.json over 4 MiB".to_owned()));
                }
                let mut text = Vec::new();
                entry.read_to_end(&mut text).map_err(read_err)?;
                manifest_json = Some(text);
            } else if !is_metadata(&path) && entry.size() > 0 {
                let (digest, size) = self.blobs().ingest_unnamed(&mut entry)?;
                members.insert(path, (digest, size));
            }
        }
        let manifest_json = manifest_json.ok_or_else(|| bad("no manifest.json".to_owned()))?;
        let entries: Vec<ArchiveEntry> = serde_json::from_slice(&manifest_json)
            .map_err(|e| bad(format!("manifest.json: {e}")))?;
        let entry = match repo_tag {
            Some(tag) => {
                let want = canonical_name(tag);
                entries
                    .iter()
                    .find(|e| {
                        e.repo_tags
                            .iter()
                            .flatten()
                            .any(|t| canonical_name(t) == want)
                    })
                    .ok_or_else(|| bad(format!("no image tagged {tag:?}")))?
            }
            None => match entries.as_slice() {
                [only] => only,
                _ => {
                    return Err(bad(format!(
                        "{} images in the archive: name a tag",
                        entries.len()
                    )));
                }
            },
        };
        let member = |path: &str| {
            members
                .get(path.trim_start_matches("./"))
                .cloned()
                .ok_or_else(|| bad(format!("manifest.json names missing member {path:?}")))
        };
        let (config_digest, config_size) = member(&entry.config)?;
        if let Some(hex) = named_hex(&entry.config) {
            if hex != config_digest.hex() {
                return Err(StoreError::DigestMismatch {
                    expected: Digest::from_hex(hex)?,
                    actual: config_digest,
                });
            }
        }
        let config_bytes = self.blobs().read(&config_digest)?;
        let config = parse_config(&config_bytes, &config_digest, entry.layers.len())?;
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let (digest, size) = member(path)?;
            if digest != *diff_id {
                return Err(StoreError::DiffIdMismatch {
                    digest: digest.clone(),
                    expected: diff_id.clone(),
                    actual: digest,
                });
            }
            layers.push(Descriptor {
                media_type: DOCKER_LAYER_TAR.to_owned(),
                digest,
                size,
                platform: None,
                annotations: None,
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(DOCKER_MANIFEST.to_owned()),
            config: Descriptor {
                media_type: DOCKER_CONFIG.to_owned(),
                digest: config_digest.clone(),
                size: config_size,
                platform: None,
                annotations: None,
            },
            layers,
        };
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| bad(e.to_string()))?;
        let manifest_digest = Digest::of(&manifest_bytes);
        self.blobs().put(&manifest_digest, &manifest_bytes)?;
        let layers = Self::layer_records(&manifest, &config);
        for layer in &layers {
            self.ensure_layer(layer)?;
        }
        let name = match name {
            Some(n) => canonical_name(n),
            None => entry
                .repo_tags
                .iter()
                .flatten()
                .next()
                .map(|t| canonical_name(t))
                .ok_or_else(|| bad("the image has no RepoTags: give a name".to_owned()))?,
        };
        let record = ImageRecord {
            name,
            index_digest: None,
            manifest_digest,
            config_digest,
            platform: format!("{}/{}", config.os, config.architecture),
            layers,
        };
        self.record_image(&record)?;
        info!(image = %record.name, archive = %archive.display(), "imported docker archive");
        Ok(record)
    }
}
