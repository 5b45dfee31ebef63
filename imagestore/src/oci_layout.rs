//! Import from an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) or such a layout packed in a tar (`oci-archive`): for
//! `berth load` and for tests. Blobs go through the
//! same verified ingest as pulled ones (a layout is not trusted either),
//! layers are unpacked, and the image is recorded under the given name.

use std::fs::{self, File};
use std::path::Path;
use std::sync::atomic::Ordering;

use tracing::info;

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::manifest::{
    Descriptor, Index, ManifestOrIndex, parse_config, parse_manifest, select_platform,
};
use crate::metadata::ImageRecord;
use crate::platform::Platform;
use crate::store::{ImageStore, canonical_name};

/// The annotation naming a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

impl ImageStore {
    /// Imports the image tagged `tag` in the OCI layout at `layout` (or its
    /// only image when `tag` is `None`), for `platform` (default: the
    /// host's), and records it as `name`.
    pub fn import_oci_layout(
        &self,
        layout: &Path,
        tag: Option<&str>,
        name: &str,
        platform: Option<&Platform>,
    ) -> Result<ImageRecord> {
        let _lease = self.inner.leases.lease();
        let index_path = layout.join("index.json");
        let bytes = fs::read(&index_path).map_err(|e| StoreError::io("read", &index_path, e))?;
        let record =
            self.import_from_index(layout, &bytes, tag, name, platform, &|digest, size| {
                self.copy_blob(layout, digest, size)
            })?;
        info!(image = %record.name, layout = %layout.display(), "imported OCI layout");
        Ok(record)
    }

    /// Imports from an OCI layout packed in a tar (`oci-archive`, as
    /// `skopeo copy … oci-archive:` or `podman save --format oci-archive`
    /// write it). The archive is read once: every `blobs/sha256/<hex>`
    /// member is ingested (verified against its name), then the image is
    /// resolved as for [`ImageStore::import_oci_layout`]. Members the image
    /// does not use are left for GC.
    pub fn import_oci_archive(
        &self,
        archive: &Path,
        tag: Option<&str>,
        name: &str,
        platform: Option<&Platform>,
    ) -> Result<ImageRecord> {
        let _lease = self.inner.leases.lease();
        let bad = |reason: String| StoreError::Layout {
            path: archive.to_path_buf(),
            reason,
        };
        let read_err = |e| StoreError::io("read", archive, e);
        let file = fs::File::open(archive).map_err(|e| StoreError::io("open", archive, e))?;
        let mut tar = tar::Archive::new(std::io::BufReader::with_capacity(256 * 1024, file));
        let mut index = None;
        for entry in tar.entries().map_err(read_err)? {
            let mut entry = entry.map_err(read_err)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = String::from_utf8_lossy(&entry.path_bytes())
                .trim_start_matches("./")
                .to_owned();
            if path == "index.json" {
                if entry.size() > 4 << 20 {
                    return Err(bad("index.json over 4 MiB".to_owned()));
                }
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut text).map_err(read_err)?;
                index = Some(text);
            } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                let digest = Digest::from_hex(hex)?;
                let _guard = self
                    .inner
                    .inflight
                    .acquire_blocking(&format!("blob:{digest}"));
                if !self.blobs().contains(&digest) {
                    let size = entry.size();
                    self.blobs().ingest(&digest, Some(size), &mut entry)?;
                    self.inner
                        .counters
                        .blobs_fetched
                        .fetch_add(1, Ordering::Relaxed);
                    self.inner
                        .counters
                        .bytes_fetched
                        .fetch_add(size, Ordering::Relaxed);
                }
            }
        }
        let index = index.ok_or_else(|| bad("no index.json".to_owned()))?;
        let record =
            self.import_from_index(archive, &index, tag, name, platform, &|digest, _| {
                if self.blobs().contains(digest) {
                    Ok(())
                } else {
                    Err(bad(format!("archive lacks blob {digest}")))
                }
            })?;
        info!(image = %record.name, archive = %archive.display(), "imported OCI archive");
        Ok(record)
    }

    /// Resolves `tag` in a layout's `index.json` (`source` names the
    /// layout in errors); `fetch(digest, size)` must put each blob into the
    /// store.
    fn import_from_index(
        &self,
        source: &Path,
        index_json: &[u8],
        tag: Option<&str>,
        name: &str,
        platform: Option<&Platform>,
        fetch: &dyn Fn(&Digest, u64) -> Result<()>,
    ) -> Result<ImageRecord> {
        let bad = |reason: String| StoreError::Layout {
            path: source.to_path_buf(),
            reason,
        };
        let top: Index =
            serde_json::from_slice(index_json).map_err(|e| bad(format!("index.json: {e}")))?;
        let entry: &Descriptor = match tag {
            Some(tag) => top
                .manifests
                .iter()
                .find(|d| {
                    d.annotations
                        .as_ref()
                        .and_then(|a| a.get(REF_NAME))
                        .map(String::as_str)
                        == Some(tag)
                })
                .ok_or_else(|| bad(format!("no tag {tag:?} in index.json")))?,
            None => match top.manifests.as_slice() {
                [only] => only,
                _ => return Err(bad("several images in index.json: name a tag".to_owned())),
            },
        };
        let canonical = canonical_name(name);
        let platform = platform.cloned().unwrap_or_else(Platform::host);
        let mut desc = entry.clone();
        let mut index_digest = None;
        let small = |desc: &Descriptor| -> Result<Vec<u8>> {
            if desc.size > 4 << 20 {
                return Err(StoreError::BadManifest {
                    what: "descriptor",
                    digest: desc.digest.clone(),
                    reason: format!("{} bytes is too large for a manifest or config", desc.size),
                });
            }
            fetch(&desc.digest, desc.size)?;
            self.inner.blobs.read(&desc.digest)
        };
        let manifest = loop {
            let bytes = small(&desc)?;
            match parse_manifest(&bytes, &desc.media_type, &desc.digest)? {
                ManifestOrIndex::Manifest(m) => break m,
                ManifestOrIndex::Index(index) => {
                    if index_digest.is_some() {
                        return Err(bad("nested indexes are not supported".to_owned()));
                    }
                    index_digest = Some(desc.digest.clone());
                    desc = select_platform(&index, &platform, &canonical, &desc.digest)?.clone();
                }
            }
        };
        let config_bytes = small(&manifest.config)?;
        let config = parse_config(
            &config_bytes,
            &manifest.config.digest,
            manifest.layers.len(),
        )?;
        let layers = Self::layer_records(&manifest, &config);
        for layer in &layers {
            fetch(&layer.blob, layer.size)?;
            self.ensure_layer(layer)?;
        }
        let record = ImageRecord {
            name: canonical,
            index_digest,
            manifest_digest: desc.digest.clone(),
            config_digest: manifest.config.digest.clone(),
            platform: format!("{}/{}", config.os, config.architecture),
            layers,
        };
        self.record_image(&record)?;
        Ok(record)
    }

    fn copy_blob(&self, layout: &Path, digest: &Digest, size: u64) -> Result<()> {
        let _guard = self
            .inner
            .inflight
            .acquire_blocking(&format!("blob:{digest}"));
        if self.inner.blobs.contains(digest) {
            return Ok(());
        }
        let src = layout.join("blobs").join("sha256").join(digest.hex());
        let file = File::open(&src).map_err(|e| StoreError::io("open", &src, e))?;
        self.inner.blobs.ingest(digest, Some(size), file)?;
        self.inner
            .counters
            .blobs_fetched
            .fetch_add(1, Ordering::Relaxed);
        self.inner
            .counters
            .bytes_fetched
            .fetch_add(size, Ordering::Relaxed);
        Ok(())
    }
}
