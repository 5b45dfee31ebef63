//! `verify` (fsck): proves the store is consistent — every blob file
//! hashes to its name, every image's blobs and layer directories exist,
//! and reports (without deleting) what GC would collect and stray ingest
//! files.

use std::fs::File;

use tracing::{info, warn};

use crate::digest::{Digest, HashingReader};
use crate::error::{Result, StoreError};
use crate::store::ImageStore;

/// What [`ImageStore::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs checked.
    pub blobs_checked: usize,
    /// Blobs whose content does not hash to their name.
    pub corrupt_blobs: Vec<Digest>,
    /// (image, blob) pairs where an image references a missing blob.
    pub missing_blobs: Vec<(String, Digest)>,
    /// (image or container, chain ID) pairs whose layer directory is missing.
    pub missing_layers: Vec<(String, Digest)>,
    /// Blobs nothing references (GC would delete them).
    pub unreferenced_blobs: Vec<Digest>,
    /// Layer directories nothing references (GC would delete them).
    pub unreferenced_layers: Vec<Digest>,
    /// Files left in the ingest area.
    pub stray_ingest_files: usize,
}

impl VerifyReport {
    /// Whether the store is consistent (unreferenced content is not an
    /// inconsistency, just garbage).
    pub fn is_consistent(&self) -> bool {
        self.corrupt_blobs.is_empty()
            && self.missing_blobs.is_empty()
            && self.missing_layers.is_empty()
    }
}

impl ImageStore {
    /// Checks the whole store (rehashes every blob: reads everything).
    /// Holds off GC while it runs.
    pub fn verify(&self) -> Result<VerifyReport> {
        let _lease = self.inner.leases.lease();
        let mut report = VerifyReport::default();
        let blobs = self.blobs().list()?;
        for digest in &blobs {
            let path = self.blobs().path(digest);
            let file = File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
            let (actual, _) = HashingReader::new(file)
                .finish()
                .map_err(|e| StoreError::io("read", &path, e))?;
            if actual != *digest {
                warn!(%digest, %actual, "corrupt blob");
                report.corrupt_blobs.push(digest.clone());
            }
        }
        report.blobs_checked = blobs.len();
        let images = self.images()?;
        for image in &images {
            for blob in image.blobs() {
                if !self.blobs().contains(&blob) {
                    report.missing_blobs.push((image.name.clone(), blob));
                }
            }
            for chain in image.chain_ids() {
                if !self.layer_dir(&chain).is_dir() {
                    report.missing_layers.push((image.name.clone(), chain));
                }
            }
        }
        for container in self.metadata().list_containers()? {
            for chain in &container.chain_ids {
                if !self.layer_dir(chain).is_dir() {
                    report
                        .missing_layers
                        .push((format!("container {}", container.id), chain.clone()));
                }
            }
        }
        let blob_refs = self.metadata().blob_refs()?;
        let layer_refs = self.metadata().layer_refs()?;
        report.unreferenced_blobs = blobs
            .into_iter()
            .filter(|d| !blob_refs.contains_key(d))
            .collect();
        report.unreferenced_layers = self
            .unpacked_layers()?
            .into_iter()
            .filter(|c| !layer_refs.contains_key(c))
            .collect();
        report.stray_ingest_files = self.blobs().ingest_entries()?.len();
        info!(
            blobs = report.blobs_checked,
            corrupt = report.corrupt_blobs.len(),
            missing_blobs = report.missing_blobs.len(),
            missing_layers = report.missing_layers.len(),
            "store verified"
        );
        Ok(report)
    }
}
