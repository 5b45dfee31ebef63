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
//! Sharing: a per-digest lock ([`crate::inflight::InFlight`]) makes
//! concurrent pulls that share a layer fetch it once (the second finds the
//! blob present), and a per-chain-ID lock makes them unpack it once. A pull
//! holds a GC lease for its whole run.
//!
//! Name resolution ([`registries_conf`]): a short name is tried against
//! each `unqualified-search-registries` entry (default `docker.io`, with
//! `library/` for single-component names); each candidate is fetched from
//! its registry's mirrors in order, then its location; the first success
//! wins and the image is recorded under the candidate's canonical name.
//! Credentials: [`PullOptions::credentials`] if given, else the auth file
//! ([`auth_file`]).
//!
//! Transport security: HTTPS, except plain HTTP for loopback registries
//! (`127.0.0.0/8`, `::1`, `localhost`), those listed in
//! [`crate::StoreOptions::insecure_registries`] and endpoints marked
//! `insecure` in registries.conf.

pub mod auth_file;
pub mod registries_conf;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tracing::{debug, info, warn};

use self::auth_file::AuthFile;
use self::registries_conf::RegistriesConf;

use crate::blob_store::BlobWriter;
use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::manifest::{
    ACCEPTED_MANIFEST_TYPES, Descriptor, ManifestOrIndex, parse_config, parse_manifest,
    select_platform,
};
use crate::metadata::{ImageRecord, LayerRecord};
use crate::platform::Platform;
use crate::progress::{LayerState, ProgressSink};
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
    /// Receives per-layer progress events.
    pub progress: Option<ProgressSink>,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The recorded image.
    pub image: ImageRecord,
    /// Blobs this pull downloaded (config and layers; manifests and
    /// indexes are not counted).
    pub blobs_fetched: u64,
    /// Bytes of those blobs.
    pub bytes_fetched: u64,
    /// Layers this pull unpacked.
    pub layers_unpacked: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Requests per blob before a download gives up.
pub const MAX_ATTEMPTS: u32 = 4;
const RETRY_DELAY: Duration = Duration::from_millis(200);

enum Chunk {
    Data(bytes::Bytes),
    /// Discard what was written (the server restarted from byte 0).
    Reset,
    End,
}

/// Whether a registry error is worth retrying (server-side or transport).
fn is_transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

struct Ctx {
    client: Client,
    progress: Option<ProgressSink>,
    oci_ref: Reference,
    reference: ImageRef,
}

impl Ctx {
    /// Fetches a manifest or index, retrying transient failures.
    async fn manifest(&self, reference: &Reference, auth: &RegistryAuth) -> Result<bytes::Bytes> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .client
                .pull_manifest_raw(reference, auth, ACCEPTED_MANIFEST_TYPES)
                .await
            {
                Ok((bytes, _)) => return Ok(bytes),
                Err(e) if attempt < MAX_ATTEMPTS && is_transient(&e) => {
                    warn!(%reference, attempt, error = %e, "retrying manifest fetch");
                    tokio::time::sleep(RETRY_DELAY * attempt).await;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    fn emit(&self, layer: &LayerRecord, state: LayerState, done: u64) {
        if let Some(p) = &self.progress {
            p.emit(&layer.blob, state, done, layer.size);
        }
    }

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
        OciDistributionError::UnauthorizedError { url } => {
            unauthorized(format!("401 Unauthorized from {url}"))
        }
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
            Chunk::Reset => writer.reset()?,
            Chunk::End => {
                writer.commit()?;
                return Ok(());
            }
        }
    }
    // The sender went away without `End`: the download failed; dropping
    // the writer deletes the ingest file.
    Err(StoreError::Task(format!(
        "download of {} aborted",
        writer.digest()
    )))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

impl ImageStore {
    /// Whether `reference`'s registry may be spoken to over plain HTTP:
    /// loopback, listed in [`crate::StoreOptions::insecure_registries`], or
    /// `insecure` in registries.conf. Everything else is HTTPS only.
    pub fn allows_plain_http(&self, reference: &ImageRef, insecure_in_conf: bool) -> bool {
        insecure_in_conf
            || reference.is_loopback_registry()
            || self
                .options()
                .insecure_registries
                .contains(&reference.registry)
    }

    fn registry_client(&self, reference: &ImageRef, insecure: bool) -> Client {
        let protocol = if self.allows_plain_http(reference, insecure) {
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
    /// the canonical form of the name it resolved to.
    pub async fn pull(&self, reference: &str, opts: &PullOptions) -> Result<PullReport> {
        let start = Instant::now();
        let conf = RegistriesConf::load(
            self.options().registries_conf.as_deref(),
            self.options().registries_conf_d.as_deref(),
        )?;
        let auth_file = match &self.options().auth_file {
            Some(path) if path.exists() => Some(AuthFile::load(path)?),
            Some(_) => None,
            None => AuthFile::discover(&auth_file::default_paths(|k| std::env::var(k).ok()))?,
        };
        let store = self.clone();
        let _lease = tokio::task::spawn_blocking(move || store.inner.leases.lease())
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let mut last_error = None;
        for name in conf.candidates(reference)? {
            for (endpoint, insecure) in conf.endpoints(&name)? {
                let credentials = opts.credentials.clone().or_else(|| {
                    auth_file
                        .as_ref()?
                        .lookup(&endpoint.registry, &endpoint.repository)
                });
                match self
                    .pull_from(&name, &endpoint, insecure, credentials, opts, start)
                    .await
                {
                    Ok(report) => return Ok(report),
                    Err(e) => {
                        warn!(reference = %name, endpoint = %endpoint, error = %e, "pull attempt failed");
                        last_error = Some(e);
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| StoreError::ImageNotFound {
            reference: reference.to_owned(),
        }))
    }

    /// One pull attempt of `name` from `endpoint` (a mirror or its
    /// location).
    async fn pull_from(
        &self,
        name: &ImageRef,
        endpoint: &ImageRef,
        insecure: bool,
        credentials: Option<Credentials>,
        opts: &PullOptions,
        start: Instant,
    ) -> Result<PullReport> {
        let image_ref = endpoint.clone();
        let auth = match &credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let oci_ref = match (&image_ref.tag, &image_ref.digest) {
            (_, Some(d)) => Reference::with_digest(
                image_ref.registry.clone(),
                image_ref.repository.clone(),
                d.to_string(),
            ),
            (Some(t), None) => Reference::with_tag(
                image_ref.registry.clone(),
                image_ref.repository.clone(),
                t.clone(),
            ),
            (None, None) => unreachable!("ImageRef::parse always sets a tag or a digest"),
        };
        let ctx = Arc::new(Ctx {
            client: self.registry_client(&image_ref, insecure),
            progress: opts.progress.clone(),
            oci_ref,
            reference: image_ref.clone(),
        });
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        info!(reference = %name, endpoint = %image_ref, %platform, "pull started");

        // Authenticate once up front (basic credentials are then sent on
        // every request; bearer challenges get a token).
        ctx.client
            .auth(&ctx.oci_ref, &auth, oci_client::RegistryOperation::Pull)
            .await
            .map_err(|e| ctx.err(e))?;
        let bytes = ctx.manifest(&ctx.oci_ref, &auth).await?;
        let top_digest = Digest::of(&bytes);
        if let Some(expected) = &image_ref.digest {
            if *expected != top_digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual: top_digest,
                });
            }
        }
        let (index_digest, manifest_digest, manifest) =
            match parse_manifest(&bytes, "", &top_digest)? {
                ManifestOrIndex::Manifest(m) => {
                    self.blobs().put(&top_digest, &bytes)?;
                    (None, top_digest, m)
                }
                ManifestOrIndex::Index(index) => {
                    self.blobs().put(&top_digest, &bytes)?;
                    let desc =
                        select_platform(&index, &platform, &image_ref.to_string(), &top_digest)?
                            .clone();
                    let bytes = ctx.manifest(&ctx.at_digest(&desc.digest), &auth).await?;
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

        let (config_bytes, config_fetched) = self.fetch_document(&ctx, &manifest.config).await?;
        let config = parse_config(
            &config_bytes,
            &manifest.config.digest,
            manifest.layers.len(),
        )?;
        let layers = Self::layer_records(&manifest, &config);

        let parallel = opts
            .max_concurrent_downloads
            .unwrap_or(self.options().max_concurrent_downloads)
            .max(1);
        for layer in &layers {
            ctx.emit(layer, LayerState::Waiting, 0);
        }
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
            name: name.to_string(),
            index_digest,
            manifest_digest,
            config_digest: manifest.config.digest.clone(),
            platform: format!("{}/{}", config.os, config.architecture),
            layers,
        };
        self.record_image(&record)?;
        let report = PullReport {
            image: record,
            blobs_fetched: results.iter().map(|r| r.0).sum::<u64>() + u64::from(config_fetched > 0),
            bytes_fetched: results.iter().map(|r| r.1).sum::<u64>() + config_fetched,
            layers_unpacked: results.iter().filter(|r| r.2).count() as u64,
            elapsed: start.elapsed(),
        };
        info!(reference = %image_ref, blobs = report.blobs_fetched, bytes = report.bytes_fetched, unpacked = report.layers_unpacked, elapsed_ms = report.elapsed.as_millis() as u64, "pull done");
        Ok(report)
    }

    /// Fetches a small JSON blob (config) into the store and returns it,
    /// with the number of bytes downloaded (0 if it was present).
    async fn fetch_document(&self, ctx: &Ctx, desc: &Descriptor) -> Result<(Vec<u8>, u64)> {
        if desc.size > MAX_DOCUMENT_SIZE {
            return Err(StoreError::BadManifest {
                what: "descriptor",
                digest: desc.digest.clone(),
                reason: format!("{} bytes is too large for a config", desc.size),
            });
        }
        let layer = LayerRecord {
            blob: desc.digest.clone(),
            media_type: desc.media_type.clone(),
            size: desc.size,
            diff_id: desc.digest.clone(),
            chain_id: desc.digest.clone(),
        };
        let fetched = self.fetch_blob(ctx, &layer, false).await?;
        Ok((self.blobs().read(&desc.digest)?, fetched))
    }

    /// Downloads blob `layer.blob` into the store, verified, unless
    /// present. Returns the bytes fetched (0 when it was present).
    /// `report`: emit progress events (layers, not the config).
    async fn fetch_blob(&self, ctx: &Ctx, layer: &LayerRecord, report: bool) -> Result<u64> {
        let _guard = self
            .inner
            .inflight
            .acquire(&format!("blob:{}", layer.blob))
            .await;
        if self.blobs().contains(&layer.blob) {
            if report {
                ctx.emit(layer, LayerState::AlreadyPresent, layer.size);
            }
            return Ok(0);
        }
        let writer = self.blobs().begin(&layer.blob, Some(layer.size))?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let writer_task = tokio::task::spawn_blocking(move || write_chunks(writer, rx));
        let outcome = self.download(ctx, layer, report, &tx).await;
        if outcome.is_ok() {
            let _ = tx.send(Chunk::End).await;
        }
        drop(tx);
        let written = writer_task
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        outcome?;
        written?;
        if report {
            ctx.emit(layer, LayerState::Verified, layer.size);
        }
        self.inner
            .counters
            .blobs_fetched
            .fetch_add(1, Ordering::Relaxed);
        self.inner
            .counters
            .bytes_fetched
            .fetch_add(layer.size, Ordering::Relaxed);
        Ok(layer.size)
    }

    /// Streams blob `layer` into `tx`, resuming with an HTTP range request
    /// after a dropped connection and retrying 5xx/transport errors (up to
    /// [`MAX_ATTEMPTS`] requests). If the server ignores the range, the
    /// writer is reset and the blob restarts from byte 0. Verification is
    /// the writer's job: a stream that errors after delivering every byte
    /// (a verifying stream's complaint) is handed over as is.
    async fn download(
        &self,
        ctx: &Ctx,
        layer: &LayerRecord,
        report: bool,
        tx: &tokio::sync::mpsc::Sender<Chunk>,
    ) -> Result<()> {
        let desc = descriptor(layer);
        let mut done = 0u64;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let response = ctx
                .client
                .pull_blob_stream_partial(&ctx.oci_ref, &desc, done, None)
                .await;
            let mut stream = match response {
                Ok(BlobResponse::Partial(s)) => s,
                Ok(BlobResponse::Full(s)) => {
                    if done > 0 {
                        warn!(blob = %layer.blob, "registry ignored the range request: restarting the blob");
                        if tx.send(Chunk::Reset).await.is_err() {
                            return Ok(()); // the writer failed; it reports why
                        }
                        done = 0;
                    }
                    s
                }
                Err(e) => {
                    let transient = is_transient(&e);
                    let e = ctx.err(e);
                    if attempt < MAX_ATTEMPTS && transient {
                        warn!(blob = %layer.blob, attempt, error = %e, "retrying blob download");
                        tokio::time::sleep(RETRY_DELAY * attempt).await;
                        continue;
                    }
                    return Err(e);
                }
            };
            let mut failure = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => {
                        done += bytes.len() as u64;
                        if report {
                            ctx.emit(layer, LayerState::Downloading, done);
                        }
                        if tx.send(Chunk::Data(bytes)).await.is_err() {
                            return Ok(()); // the writer failed; it reports why
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            match failure {
                None => return Ok(()),
                Some(_) if done >= layer.size => return Ok(()),
                Some(e) if attempt < MAX_ATTEMPTS => {
                    warn!(blob = %layer.blob, done, attempt, error = %e, "download interrupted: resuming");
                    tokio::time::sleep(RETRY_DELAY * attempt).await;
                }
                Some(e) => {
                    return Err(StoreError::Registry {
                        registry: ctx.reference.registry.clone(),
                        reference: ctx.reference.to_string(),
                        message: format!(
                            "downloading blob {} failed after {attempt} attempts ({done} of {} bytes): {e}",
                            layer.blob, layer.size
                        ),
                    });
                }
            }
        }
    }

    /// Fetches (unless present) and unpacks (unless present) one layer.
    /// Returns (blobs fetched, bytes fetched, unpacked now).
    async fn fetch_layer(&self, ctx: &Ctx, layer: LayerRecord) -> Result<(u64, u64, bool)> {
        let bytes = self.fetch_blob(ctx, &layer, true).await?;
        ctx.emit(&layer, LayerState::Unpacking, layer.size);
        let store = self.clone();
        let record = layer.clone();
        let unpacked = blocking(move || store.ensure_layer(&record)).await?;
        ctx.emit(&layer, LayerState::Done, layer.size);
        Ok((u64::from(bytes > 0), bytes, unpacked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    #[test]
    fn plain_http_only_for_loopback_or_configured_insecure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = StoreOptions::with_root(dir.path());
        opts.insecure_registries = vec!["10.1.2.3:5000".to_owned()];
        let store = ImageStore::open(opts).expect("open");
        let r = |s: &str| ImageRef::parse(s).expect("ref");
        assert!(store.allows_plain_http(&r("127.0.0.1:5000/a"), false));
        assert!(store.allows_plain_http(&r("localhost:5000/a"), false));
        assert!(store.allows_plain_http(&r("[::1]:5000/a"), false));
        assert!(store.allows_plain_http(&r("10.1.2.3:5000/a"), false));
        assert!(!store.allows_plain_http(&r("10.1.2.3:5001/a"), false));
        assert!(!store.allows_plain_http(&r("docker.io/library/busybox"), false));
        assert!(!store.allows_plain_http(&r("127.0.0.1.nip.io/a"), false));
        assert!(store.allows_plain_http(&r("mirror.local/a"), true));
    }
}
