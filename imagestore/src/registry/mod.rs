//! Pulling from OCI distribution registries with `oci-client`.
//!
//! Pipeline per pull: resolve the reference to a manifest (through an index
//! for the requested platform), verifying each document's sha256 against
//! the digest that named it; fetch the config; then fetch all layers in
//! parallel (bounded by [`PullOptions::max_concurrent_downloads`]). Each
//! layer streams from the HTTP body through a bounded channel into a
//! blocking writer that hashes and size-checks every chunk as it lands in
//! the ingest file; only after the blob is verified, fsync'ed and renamed
//! into `blobs/` is it unpacked (from the verified file) into its chain-ID
//! directory. Unpacking never starts from unverified bytes: that costs one
//! re-read of the compressed blob (from the page cache, in practice) but
//! means a corrupted or malicious download cannot reach the unpacker at
//! all, whatever the decompressor or tar parser would have done with it.
//! Layers still overlap with one another: while one unpacks, others
//! download.
//!
//! Sharing: a per-digest lock ([`crate::ingest::InFlight`]) makes
//! concurrent pulls that share a layer fetch it once (the second finds the
//! blob present), and a per-chain-ID lock makes them unpack it once. A pull
//! holds a GC lease for its whole run.
//!
//! Transport security: HTTPS, except plain HTTP for loopback registries
//! (`127.0.0.0/8`, `::1`, `localhost`) and those listed in
//! [`crate::StoreOptions::insecure_registries`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tracing::{debug, info};

use crate::blob_store::BlobWriter;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::manifest::{
    ACCEPTED_MANIFEST_TYPES, Descriptor, ManifestOrIndex, parse_config, parse_manifest,
    select_platform,
};
use crate::metadata::{ImageRecord, LayerRecord};
use crate::platform::Platform;
use crate::reference::ImageRef;
use crate::store::ImageStore;

/// Largest manifest, index or config accepted.
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

/// Username and password for HTTP basic auth.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Options of one pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Platform to pick from an index (default: the host's).
    pub platform: Option<Platform>,
    /// Basic-auth credentials (default: anonymous).
    pub credentials: Option<Credentials>,
    /// Override of the store's parallel layer download limit.
    pub max_concurrent_downloads: Option<usize>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The recorded image.
    pub image: ImageRecord,
    /// Blobs this pull downloaded (manifests excluded).
    pub blobs_fetched: u64,
    /// Bytes of those blobs.
    pub bytes_fetched: u64,
    /// Layers this pull unpacked.
    pub layers_unpacked: u64,
    /// Wall time.
    pub elapsed: Duration,
}

enum Chunk {
    Data(bytes::Bytes),
    End,
}

struct Ctx {
    client: Client,
    oci_ref: Reference,
    reference: ImageRef,
}

impl Ctx {
    fn err(&self, e: OciDistributionError) -> StoreError {
        map_error(e, &self.reference)
    }

    fn at_digest(&self, digest: &Digest) -> Reference {
        Reference::with_digest(
            self.reference.registry.clone(),
            self.reference.repository.clone(),
            digest.to_string(),
        )
    }
}

fn map_error(e: OciDistributionError, reference: &ImageRef) -> StoreError {
    let registry = reference.registry.clone();
    let reference_s = reference.to_string();
    let unauthorized = |message: String| StoreError::Unauthorized {
        registry: registry.clone(),
        reference: reference_s.clone(),
        message,
    };
    match e {
        OciDistributionError::AuthenticationFailure(m) => unauthorized(m),
        OciDistributionError::UnauthorizedError { url } => unauthorized(format!("401 Unauthorized from {url}")),
        OciDistributionError::ServerError { code, url, message } if code == 401 || code == 403 => {
            unauthorized(format!("{code} from {url}: {message}"))
        }
        other => {
            let message = other.to_string();
            if message.contains("UNAUTHORIZED") || message.contains("DENIED") {
                unauthorized(message)
            } else {
                StoreError::Registry {
                    registry,
                    reference: reference_s,
                    message,
                }
            }
        }
    }
}

fn descriptor(layer: &LayerRecord) -> OciDescriptor {
    OciDescriptor {
        media_type: layer.media_type.clone(),
        digest: layer.blob.to_string(),
        size: layer.size as i64,
        ..Default::default()
    }
}

/// Receives chunks into `writer`; commits only after an explicit `End`.
fn write_chunks(mut writer: BlobWriter, mut rx: tokio::sync::mpsc::Receiver<Chunk>) -> Result<()> {
    while let Some(chunk) = rx.blocking_recv() {
        match chunk {
            Chunk::Data(bytes) => writer.write(&bytes)?,
            Chunk::End => {
                writer.commit()?;
                return Ok(());
            }
        }
    }
    // The sender went away without `End`: the download failed; dropping
    // the writer deletes the ingest file.
    Err(StoreError::Task(format!("download of {} aborted", writer.digest())))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

impl ImageStore {
    fn registry_client(&self, reference: &ImageRef) -> Client {
        let plain_http = reference.is_loopback_registry()
            || self
                .options()
                .insecure_registries
                .iter()
                .any(|r| *r == reference.registry);
        let protocol = if plain_http {
            ClientProtocol::HttpsExcept(vec![reference.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
            platform_resolver: None,
            ..Default::default()
        })
    }

    /// Pulls `reference` (e.g. `busybox`, `127.0.0.1:5000/app:v1`,
    /// `repo@sha256:…`) and unpacks its layers; the image is recorded under
    /// the canonical form of `reference`.
    pub async fn pull(&self, reference: &str, opts: &PullOptions) -> Result<PullReport> {
        let start = Instant::now();
        let image_ref = ImageRef::parse(reference)?;
        let store = self.clone();
        let _lease = tokio::task::spawn_blocking(move || store.inner.leases.lease())
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let auth = match &opts.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let oci_ref = match (&image_ref.tag, &image_ref.digest) {
            (_, Some(d)) => Reference::with_digest(image_ref.registry.clone(), image_ref.repository.clone(), d.to_string()),
            (Some(t), None) => Reference::with_tag(image_ref.registry.clone(), image_ref.repository.clone(), t.clone()),
            (None, None) => unreachable!("ImageRef::parse always sets a tag or a digest"),
        };
        let ctx = Arc::new(Ctx {
            client: self.registry_client(&image_ref),
            oci_ref,
            reference: image_ref.clone(),
        });
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        info!(reference = %image_ref, %platform, "pull started");

        // Authenticate once up front (basic credentials are then sent on
        // every request; bearer challenges get a token).
        ctx.client
            .auth(&ctx.oci_ref, &auth, oci_client::RegistryOperation::Pull)
            .await
            .map_err(|e| ctx.err(e))?;
        let (bytes, _) = ctx
            .client
            .pull_manifest_raw(&ctx.oci_ref, &auth, ACCEPTED_MANIFEST_TYPES)
            .await
            .map_err(|e| ctx.err(e))?;
        let top_digest = Digest::of(&bytes);
        if let Some(expected) = &image_ref.digest {
            if *expected != top_digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual: top_digest,
                });
            }
        }
        let (index_digest, manifest_digest, manifest) = match parse_manifest(&bytes, "", &top_digest)? {
            ManifestOrIndex::Manifest(m) => {
                self.blobs().put(&top_digest, &bytes)?;
                (None, top_digest, m)
            }
            ManifestOrIndex::Index(index) => {
                self.blobs().put(&top_digest, &bytes)?;
                let desc = select_platform(&index, &platform, &image_ref.to_string(), &top_digest)?.clone();
                let (bytes, _) = ctx
                    .client
                    .pull_manifest_raw(&ctx.at_digest(&desc.digest), &auth, ACCEPTED_MANIFEST_TYPES)
                    .await
                    .map_err(|e| ctx.err(e))?;
                let actual = Digest::of(&bytes);
                if actual != desc.digest {
                    return Err(StoreError::DigestMismatch {
                        expected: desc.digest,
                        actual,
                    });
                }
                match parse_manifest(&bytes, &desc.media_type, &desc.digest)? {
                    ManifestOrIndex::Manifest(m) => {
                        self.blobs().put(&desc.digest, &bytes)?;
                        (Some(top_digest), desc.digest, m)
                    }
                    ManifestOrIndex::Index(_) => {
                        return Err(StoreError::BadManifest {
                            what: "index",
                            digest: top_digest,
                            reason: "nested indexes are not supported".to_owned(),
                        });
                    }
                }
            }
        };
        debug!(manifest = %manifest_digest, "manifest resolved");

        let config_bytes = self.fetch_document(&ctx, &manifest.config).await?;
        let config = parse_config(&config_bytes, &manifest.config.digest, manifest.layers.len())?;
        let layers = Self::layer_records(&manifest, &config);

        let parallel = opts
            .max_concurrent_downloads
            .unwrap_or(self.options().max_concurrent_downloads)
            .max(1);
        let results: Vec<(u64, u64, bool)> = futures_util::stream::iter(layers.iter().cloned())
            .map(|layer| {
                let store = self.clone();
                let ctx = ctx.clone();
                async move { store.fetch_layer(&ctx, layer).await }
            })
            .buffer_unordered(parallel)
            .try_collect()
            .await?;

        let record = ImageRecord {
            name: image_ref.to_string(),
            index_digest,
            manifest_digest,
            config_digest: manifest.config.digest.clone(),
            platform: format!("{}/{}", config.os, config.architecture),
            layers,
        };
        self.record_image(&record)?;
        let report = PullReport {
            image: record,
            blobs_fetched: results.iter().map(|r| r.0).sum(),
            bytes_fetched: results.iter().map(|r| r.1).sum(),
            layers_unpacked: results.iter().filter(|r| r.2).count() as u64,
            elapsed: start.elapsed(),
        };
        info!(reference = %image_ref, blobs = report.blobs_fetched, bytes = report.bytes_fetched, unpacked = report.layers_unpacked, elapsed_ms = report.elapsed.as_millis() as u64, "pull done");
        Ok(report)
    }

    /// Fetches a small JSON blob (config) into the store and returns it.
    async fn fetch_document(&self, ctx: &Ctx, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > MAX_DOCUMENT_SIZE {
            return Err(StoreError::BadManifest {
                what: "descriptor",
                digest: desc.digest.clone(),
                reason: format!("{} bytes is too large for a config", desc.size),
            });
        }
        if !self.blobs().contains(&desc.digest) {
            let layer = LayerRecord {
                blob: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                size: desc.size,
                diff_id: desc.digest.clone(),
                chain_id: desc.digest.clone(),
            };
            self.fetch_blob(ctx, &layer).await?;
        }
        self.blobs().read(&desc.digest)
    }

    /// Downloads blob `layer.blob` into the store, verified, unless
    /// present. Returns the bytes fetched (0 when it was present).
    async fn fetch_blob(&self, ctx: &Ctx, layer: &LayerRecord) -> Result<u64> {
        let _guard = self.inner.inflight.acquire(&format!("blob:{}", layer.blob)).await;
        if self.blobs().contains(&layer.blob) {
            return Ok(0);
        }
        let mut stream = ctx
            .client
            .pull_blob_stream(&ctx.oci_ref, &descriptor(layer))
            .await
            .map_err(|e| ctx.err(e))?;
        let writer = self.blobs().begin(&layer.blob, Some(layer.size))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let writer_task = tokio::task::spawn_blocking(move || write_chunks(writer, rx));
        let mut download_error = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if tx.send(Chunk::Data(bytes)).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
                Err(e) => {
                    download_error = Some(e);
                    break;
                }
            }
        }
        if download_error.is_none() {
            let _ = tx.send(Chunk::End).await;
        }
        drop(tx);
        let written = writer_task.await.map_err(|e| StoreError::Task(e.to_string()))?;
        if let Some(e) = download_error {
            return Err(StoreError::Registry {
                registry: ctx.reference.registry.clone(),
                reference: ctx.reference.to_string(),
                message: format!("downloading blob {}: {e}", layer.blob),
            });
        }
        written?;
        self.inner.counters.blobs_fetched.fetch_add(1, Ordering::Relaxed);
        self.inner.counters.bytes_fetched.fetch_add(layer.size, Ordering::Relaxed);
        Ok(layer.size)
    }

    /// Fetches (unless present) and unpacks (unless present) one layer.
    /// Returns (blobs fetched, bytes fetched, unpacked now).
    async fn fetch_layer(&self, ctx: &Ctx, layer: LayerRecord) -> Result<(u64, u64, bool)> {
        let bytes = self.fetch_blob(ctx, &layer).await?;
        let store = self.clone();
        let unpacked = blocking(move || store.ensure_layer(&layer)).await?;
        Ok((u64::from(bytes > 0), bytes, unpacked))
    }
}
