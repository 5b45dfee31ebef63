//! Garbage collection: deletes every blob and unpacked layer that no image
//! and no container references (by the refcounts in the metadata store).
//! It runs under the collector's side of [`crate::leases::Leases`], so no
//! pull, import or rootfs preparation is between storing content and
//! recording it while GC decides what is garbage.

use std::fs;

use tracing::info;

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::store::ImageStore;

/// What garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs_removed: Vec<Digest>,
    /// Layer directories (chain IDs) deleted.
    pub layers_removed: Vec<Digest>,
}

impl ImageStore {
    /// Deletes every blob and layer directory that no image or container
    /// references. Waits for running pulls/imports to finish and holds new
    /// ones off while it runs.
    pub fn gc(&self) -> Result<GcReport> {
        let _collecting = self.inner.leases.collect();
        let blob_refs = self.inner.meta.blob_refs()?;
        let layer_refs = self.inner.meta.layer_refs()?;
        let mut report = GcReport::default();
        for digest in self.inner.blobs.list()? {
            if !blob_refs.contains_key(&digest) {
                self.inner.blobs.remove(&digest)?;
                report.blobs_removed.push(digest);
            }
        }
        for chain in self.unpacked_layers()? {
            if !layer_refs.contains_key(&chain) {
                let dir = self.inner.layers_dir.join(chain.hex());
                fs::remove_dir_all(&dir).map_err(|e| StoreError::io("remove", &dir, e))?;
                report.layers_removed.push(chain);
            }
        }
        info!(
            blobs = report.blobs_removed.len(),
            layers = report.layers_removed.len(),
            "garbage collected"
        );
        Ok(report)
    }
}
