//! [`ImageStore`]: the store's root directory and the operations the CLI
//! and the CRI server call.
//!
//! Layout under the root (default [`DEFAULT_ROOT`]):
//!
//! ```text
//! meta.redb                  metadata database (see `metadata`)
//! blobs/sha256/<hex>         verified blobs (see `blob_store`)
//! ingest/                    blobs being written
//! layers/<chain-id hex>/fs   unpacked layers, overlayfs form, one per chain ID
//! layers/.tmp-*              layers being unpacked (renamed into place when done)
//! containers/<id>/           container rootfs: upper/ work/ merged/ (overlay) or rootfs/ (copy)
//! ```
//!
//! Every visible blob and layer directory is complete: both are built
//! under a temporary name and renamed into place after verification and a
//! sync. Leftover temporaries are removed at open.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{info, warn};

use crate::blob_store::BlobStore;
use crate::chain_id::chain_ids;
use crate::compression::Compression;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::inflight::InFlight;
use crate::layer_unpack::unpack_layer;
use crate::leases::Leases;
use crate::manifest::{ImageConfig, Manifest};
use crate::metadata::{ImageRecord, LayerRecord, Metadata};
use crate::reference::ImageRef;

/// Default store root.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";
/// Default number of layers fetched at once per pull.
pub const DEFAULT_MAX_CONCURRENT_DOWNLOADS: usize = 3;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The root directory.
    pub root: PathBuf,
    /// Layers fetched in parallel per pull (at least 1).
    pub max_concurrent_downloads: usize,
    /// Registries (`host[:port]`) reached over plain HTTP even though they
    /// are not loopback (in addition to registries.conf `insecure`).
    pub insecure_registries: Vec<String>,
    /// containers-registries.conf(5) main file; `None`: none.
    pub registries_conf: Option<PathBuf>,
    /// Its drop-in directory; `None`: none.
    pub registries_conf_d: Option<PathBuf>,
    /// The auth file to use; `None`: discover it from the environment
    /// (see [`crate::registry::auth_file`]). A path that does not exist
    /// means no stored credentials.
    pub auth_file: Option<PathBuf>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            root: PathBuf::from(DEFAULT_ROOT),
            max_concurrent_downloads: DEFAULT_MAX_CONCURRENT_DOWNLOADS,
            insecure_registries: Vec::new(),
            registries_conf: Some(PathBuf::from(
                crate::registry::registries_conf::DEFAULT_REGISTRIES_CONF,
            )),
            registries_conf_d: Some(PathBuf::from(
                crate::registry::registries_conf::DEFAULT_REGISTRIES_CONF_D,
            )),
            auth_file: None,
        }
    }
}

impl StoreOptions {
    /// Default options with another root.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        StoreOptions {
            root: root.into(),
            ..Default::default()
        }
    }
}

/// Work counters since the store was opened (for tests and metrics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub blobs_fetched: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub layers_unpacked: AtomicU64,
}

/// A snapshot of the work counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Blobs downloaded from registries or copied from layouts.
    pub blobs_fetched: u64,
    /// Bytes of those blobs.
    pub bytes_fetched: u64,
    /// Layers unpacked.
    pub layers_unpacked: u64,
}

pub(crate) struct Inner {
    pub opts: StoreOptions,
    pub blobs: BlobStore,
    pub meta: Metadata,
    pub layers_dir: PathBuf,
    pub containers_dir: PathBuf,
    pub inflight: InFlight,
    pub leases: Leases,
    pub counters: Counters,
}

/// A handle on an open store; cheap to clone, shareable across threads
/// and tasks.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.opts.root)
            .finish()
    }
}

/// Normalises an image name for lookups: references are stored in
/// canonical form; anything unparsable is used as given.
pub fn canonical_name(name: &str) -> String {
    ImageRef::parse(name).map_or_else(|_| name.to_owned(), |r| r.to_string())
}

fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| StoreError::io("create directory", path, e))
}

/// fsyncs a directory (after a rename into it).
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("fsync", path, e))
}

impl ImageStore {
    /// Opens (creating) the store at `opts.root`, and removes leftovers of
    /// interrupted ingests and unpacks.
    pub fn open(opts: StoreOptions) -> Result<ImageStore> {
        let root = opts.root.clone();
        mkdir(&root)?;
        // Opening the database takes its exclusive lock: from here on this
        // process owns the store, so temporaries are safe to delete.
        let meta = Metadata::open(&root.join("meta.redb"))?;
        let blobs = BlobStore::open(&root)?;
        blobs.clear_ingest()?;
        let layers_dir = root.join("layers");
        let containers_dir = root.join("containers");
        mkdir(&layers_dir)?;
        mkdir(&containers_dir)?;
        for entry in
            fs::read_dir(&layers_dir).map_err(|e| StoreError::io("read", &layers_dir, e))?
        {
            let entry = entry.map_err(|e| StoreError::io("read", &layers_dir, e))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                warn!(path = %entry.path().display(), "removing interrupted unpack");
                fs::remove_dir_all(entry.path())
                    .map_err(|e| StoreError::io("remove", entry.path(), e))?;
            }
        }
        let opts = StoreOptions {
            max_concurrent_downloads: opts.max_concurrent_downloads.max(1),
            ..opts
        };
        Ok(ImageStore {
            inner: Arc::new(Inner {
                opts,
                blobs,
                meta,
                layers_dir,
                containers_dir,
                inflight: InFlight::default(),
                leases: Leases::default(),
                counters: Counters::default(),
            }),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.opts.root
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.opts
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// The metadata database.
    pub fn metadata(&self) -> &Metadata {
        &self.inner.meta
    }

    /// The unpacked directory of layer `chain_id` (`layers/<hex>/fs`).
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.inner.layers_dir.join(chain_id.hex()).join("fs")
    }

    /// Chain IDs of the unpacked layers present on disk.
    pub fn unpacked_layers(&self) -> Result<Vec<Digest>> {
        let dir = &self.inner.layers_dir;
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| StoreError::io("read", dir, e))? {
            let entry = entry.map_err(|e| StoreError::io("read", dir, e))?;
            if let Some(Ok(d)) = entry.file_name().to_str().map(Digest::from_hex) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Work counters since open.
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            blobs_fetched: c.blobs_fetched.load(Ordering::Relaxed),
            bytes_fetched: c.bytes_fetched.load(Ordering::Relaxed),
            layers_unpacked: c.layers_unpacked.load(Ordering::Relaxed),
        }
    }

    /// The image `name` (any spelling of its reference).
    pub fn image(&self, name: &str) -> Result<ImageRecord> {
        let canonical = canonical_name(name);
        self.inner
            .meta
            .get_image(&canonical)?
            .ok_or(StoreError::ImageNotFound {
                reference: canonical,
            })
    }

    /// Every image.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        self.inner.meta.list_images()
    }

    /// Forgets image `name`. Its blobs and layers stay on disk until
    /// [`ImageStore::gc`], which frees those no other image or container
    /// holds.
    pub fn remove_image(&self, name: &str) -> Result<ImageRecord> {
        let canonical = canonical_name(name);
        let removed =
            self.inner
                .meta
                .remove_image(&canonical)?
                .ok_or(StoreError::ImageNotFound {
                    reference: canonical,
                })?;
        info!(image = %removed.name, "image removed");
        Ok(removed)
    }

    /// Builds the layer records (with chain IDs) of an image.
    pub(crate) fn layer_records(manifest: &Manifest, config: &ImageConfig) -> Vec<LayerRecord> {
        let chains = chain_ids(&config.rootfs.diff_ids);
        manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .zip(chains)
            .map(|((desc, diff_id), chain_id)| LayerRecord {
                blob: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
                diff_id: diff_id.clone(),
                chain_id,
            })
            .collect()
    }

    /// Makes sure layer `layer` is unpacked (its blob must be in the
    /// store). Blocking; at most one unpack per chain ID at a time.
    /// Returns whether this call unpacked it.
    pub(crate) fn ensure_layer(&self, layer: &LayerRecord) -> Result<bool> {
        let _guard = self
            .inner
            .inflight
            .acquire_blocking(&format!("layer:{}", layer.chain_id));
        let final_dir = self.inner.layers_dir.join(layer.chain_id.hex());
        if final_dir.is_dir() {
            return Ok(false);
        }
        let compression = Compression::from_media_type(&layer.media_type, &layer.blob)?;
        let tmp = self.inner.layers_dir.join(format!(
            ".tmp-{}-{}-{}",
            layer.chain_id.hex(),
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let fs_dir = tmp.join("fs");
        mkdir(&fs_dir)?;
        let result = self
            .unpack_into(layer, compression, &fs_dir)
            .and_then(|()| {
                fs::rename(&tmp, &final_dir)
                    .map_err(|e| StoreError::io("rename into place", &final_dir, e))?;
                sync_dir(&self.inner.layers_dir)
            });
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        self.inner
            .counters
            .layers_unpacked
            .fetch_add(1, Ordering::Relaxed);
        info!(chain_id = %layer.chain_id, blob = %layer.blob, "layer unpacked");
        Ok(true)
    }

    fn unpack_into(
        &self,
        layer: &LayerRecord,
        compression: Compression,
        dest: &Path,
    ) -> Result<()> {
        let file = self.inner.blobs.open_blob(&layer.blob)?;
        let summary = unpack_layer(file, compression, &layer.blob, dest)?;
        if summary.diff_id != layer.diff_id {
            return Err(StoreError::DiffIdMismatch {
                digest: layer.blob.clone(),
                expected: layer.diff_id.clone(),
                actual: summary.diff_id,
            });
        }
        // One syncfs makes every file of the layer durable before the
        // rename publishes it.
        let dir = fs::File::open(dest).map_err(|e| StoreError::io("open", dest, e))?;
        // SAFETY: `dir` is an open descriptor for the duration of the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(StoreError::io(
                "syncfs",
                dest,
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Records image `name` → manifest/config/layers (all present).
    pub(crate) fn record_image(&self, record: &ImageRecord) -> Result<()> {
        if let Some(old) = self.inner.meta.put_image(record)? {
            if old.manifest_digest != record.manifest_digest {
                info!(image = %record.name, old = %old.manifest_digest, new = %record.manifest_digest, "image retagged");
            }
        }
        info!(image = %record.name, manifest = %record.manifest_digest, "image recorded");
        Ok(())
    }
}
