//! Content-addressed blobs: `blobs/sha256/<hex>` under the store root.
//!
//! Every blob is written through the ingest area (`ingest/`, same
//! filesystem): hashed and size-checked *while* it streams in, fsync'ed,
//! and only then renamed into `blobs/sha256/` (followed by an fsync of that
//! directory). A blob that fails verification is deleted from `ingest/` and
//! never becomes visible; a crash leaves at most stray ingest files, which
//! [`BlobStore::clear_ingest`] removes when the store is opened. A visible
//! blob is therefore always complete and correct.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{debug, warn};

use crate::digest::{Digest, Hasher};
use crate::error::{Result, StoreError};

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// The blob directory of a store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl BlobStore {
    /// Uses (creating if needed) `root/blobs/sha256` and `root/ingest`.
    pub fn open(root: &Path) -> Result<BlobStore> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
        }
        Ok(BlobStore { blobs, ingest })
    }

    /// Deletes leftovers of interrupted ingests. Call only while no ingest
    /// runs (the store does it at open, holding the database lock).
    pub fn clear_ingest(&self) -> Result<()> {
        let entries =
            fs::read_dir(&self.ingest).map_err(|e| StoreError::io("read", &self.ingest, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("read", &self.ingest, e))?;
            warn!(path = %entry.path().display(), "removing interrupted ingest");
            fs::remove_file(entry.path()).map_err(|e| StoreError::io("remove", entry.path(), e))?;
        }
        Ok(())
    }

    /// Where blob `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Whether blob `digest` is in the store.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Reads a (small) blob whole: manifests, configs.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path(digest);
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::BlobNotFound {
                digest: digest.clone(),
            },
            _ => StoreError::io("read", &path, e),
        })
    }

    /// Opens a blob for streaming.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::BlobNotFound {
                digest: digest.clone(),
            },
            _ => StoreError::io("open", &path, e),
        })
    }

    /// Starts writing blob `expected` (`size` bytes if known).
    pub fn begin(&self, expected: &Digest, size: Option<u64>) -> Result<BlobWriter> {
        let seq = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .ingest
            .join(format!("{}.{}.{seq}", expected.hex(), std::process::id()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        Ok(BlobWriter {
            file: Some(file),
            tmp,
            hasher: Hasher::new(),
            expected: expected.clone(),
            size,
            blobs: self.blobs.clone(),
        })
    }

    /// Streams `reader` into blob `expected`; see [`BlobWriter`].
    pub fn ingest(
        &self,
        expected: &Digest,
        size: Option<u64>,
        mut reader: impl Read,
    ) -> Result<PathBuf> {
        let mut writer = self.begin(expected, size)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io("read source of", writer.tmp.clone(), e)),
            };
            writer.write(&buf[..n])?;
        }
        writer.commit()
    }

    /// Streams `reader` into the store under the digest it hashes to (for
    /// content whose digest is not known in advance, e.g. files of a
    /// `docker save` archive). Returns the digest and size. The caller
    /// must still check the digest against whatever names the content.
    pub fn ingest_unnamed(&self, mut reader: impl Read) -> Result<(Digest, u64)> {
        let seq = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .ingest
            .join(format!("unnamed.{}.{seq}", std::process::id()));
        let result = (|| {
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| StoreError::io("create", &tmp, e))?;
            let mut hasher = Hasher::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(StoreError::io("read source of", &tmp, e)),
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .map_err(|e| StoreError::io("write", &tmp, e))?;
            }
            file.sync_all()
                .map_err(|e| StoreError::io("fsync", &tmp, e))?;
            let len = hasher.len();
            let digest = hasher.finish();
            let dest = self.path(&digest);
            fs::rename(&tmp, &dest).map_err(|e| StoreError::io("rename into place", &dest, e))?;
            File::open(&self.blobs)
                .and_then(|d| d.sync_all())
                .map_err(|e| StoreError::io("fsync", &self.blobs, e))?;
            Ok((digest, len))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Stores an in-memory blob (manifest, config) after verifying it.
    pub fn put(&self, expected: &Digest, data: &[u8]) -> Result<PathBuf> {
        if self.contains(expected) {
            return Ok(self.path(expected));
        }
        let mut writer = self.begin(expected, Some(data.len() as u64))?;
        writer.write(data)?;
        writer.commit()
    }

    /// Deletes a blob (absent is fine).
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &path, e)),
        }
    }

    /// Every blob present.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.blobs).map_err(|e| StoreError::io("read", &self.blobs, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("read", &self.blobs, e))?;
            match entry.file_name().to_str().map(Digest::from_hex) {
                Some(Ok(d)) => out.push(d),
                _ => warn!(path = %entry.path().display(), "stray file in blob directory"),
            }
        }
        Ok(out)
    }

    /// Files currently in the ingest area (for tests and fsck).
    pub fn ingest_entries(&self) -> Result<Vec<PathBuf>> {
        let entries =
            fs::read_dir(&self.ingest).map_err(|e| StoreError::io("read", &self.ingest, e))?;
        entries
            .map(|e| {
                e.map(|e| e.path())
                    .map_err(|e| StoreError::io("read", &self.ingest, e))
            })
            .collect()
    }
}

/// A blob being written: bytes are hashed and counted as they arrive;
/// exceeding the announced size fails at once. [`BlobWriter::commit`]
/// verifies, fsyncs and renames into place; dropping it uncommitted (or a
/// failed commit) deletes the ingest file.
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<File>,
    tmp: PathBuf,
    hasher: Hasher,
    expected: Digest,
    size: Option<u64>,
    blobs: PathBuf,
}

impl BlobWriter {
    /// The digest being written.
    pub fn digest(&self) -> &Digest {
        &self.expected
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }

    /// Appends bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let after = self.hasher.len() + data.len() as u64;
        if let Some(size) = self.size {
            if after > size {
                return Err(StoreError::SizeMismatch {
                    digest: self.expected.clone(),
                    expected: size,
                    actual: after,
                    truncated: false,
                });
            }
        }
        self.hasher.update(data);
        match self.file.as_mut() {
            Some(file) => file
                .write_all(data)
                .map_err(|e| StoreError::io("write", &self.tmp, e)),
            None => Err(StoreError::Task("write after commit".to_owned())),
        }
    }

    /// Discards everything written so far (a download restarting at 0).
    pub fn reset(&mut self) -> Result<()> {
        use std::io::Seek;
        self.hasher = Hasher::new();
        match self.file.as_mut() {
            Some(file) => file
                .set_len(0)
                .and_then(|()| file.rewind())
                .map_err(|e| StoreError::io("truncate", &self.tmp, e)),
            None => Err(StoreError::Task("reset after commit".to_owned())),
        }
    }

    /// Verifies size and digest, fsyncs, and makes the blob visible.
    pub fn commit(mut self) -> Result<PathBuf> {
        let len = self.hasher.len();
        if let Some(size) = self.size {
            if len != size {
                return Err(StoreError::SizeMismatch {
                    digest: self.expected.clone(),
                    expected: size,
                    actual: len,
                    truncated: true,
                });
            }
        }
        let actual = std::mem::take(&mut self.hasher).finish();
        if actual != self.expected {
            return Err(StoreError::DigestMismatch {
                expected: self.expected.clone(),
                actual,
            });
        }
        let file = self.file.take();
        if let Some(file) = &file {
            file.sync_all()
                .map_err(|e| StoreError::io("fsync", &self.tmp, e))?;
        }
        drop(file);
        let dest = self.blobs.join(self.expected.hex());
        fs::rename(&self.tmp, &dest).map_err(|e| StoreError::io("rename into place", &dest, e))?;
        File::open(&self.blobs)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io("fsync", &self.blobs, e))?;
        debug!(digest = %self.expected, bytes = len, "blob committed");
        // Renamed away: nothing left for Drop to clean.
        self.tmp = PathBuf::new();
        Ok(dest)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
