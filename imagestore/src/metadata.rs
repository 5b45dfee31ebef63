//! The metadata database: image names → what they resolve to, and the
//! reference counts that decide what garbage collection may delete.
//!
//! Stored in [redb](https://docs.rs/redb): a pure-Rust, actively maintained
//! embedded key-value store with ACID transactions, copy-on-write B-trees
//! and a checksummed, crash-safe commit (a crash or power loss leaves the
//! last committed state; no recovery step, no WAL to replay). It is one
//! file (`meta.redb`), takes an exclusive file lock (so two daemons cannot
//! share a store by accident), and lets one write transaction update an
//! image record and every refcount it implies atomically — the property
//! that keeps GC correct. SQLite would also do but brings C and a SQL layer
//! we do not need; a directory of JSON files cannot update several
//! refcounts atomically.
//!
//! Records are JSON values (self-describing, easy to evolve, tiny).
//! Tables:
//! - `images`: canonical reference → [`ImageRecord`];
//! - `containers`: container ID → [`ContainerRecord`] (holds its layers);
//! - `blob_refs`: blob hex → number of images holding it;
//! - `layer_refs`: chain-ID hex → number of images + containers holding it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Result, StoreError};

const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
const BLOB_REFS: TableDefinition<&str, u64> = TableDefinition::new("blob_refs");
const LAYER_REFS: TableDefinition<&str, u64> = TableDefinition::new("layer_refs");

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The (compressed) layer blob.
    pub blob: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Chain ID of this layer and all below it (its directory's name).
    pub chain_id: Digest,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Canonical reference (`docker.io/library/busybox:latest`).
    pub name: String,
    /// The index the reference resolved to, if it was multi-platform.
    pub index_digest: Option<Digest>,
    /// The image manifest.
    pub manifest_digest: Digest,
    /// The image config.
    pub config_digest: Digest,
    /// `os/arch[/variant]` of the image.
    pub platform: String,
    /// Layers, base first.
    pub layers: Vec<LayerRecord>,
}

impl ImageRecord {
    /// Every blob the image holds: index, manifest, config, layers.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = self.index_digest.iter().cloned().collect();
        out.push(self.manifest_digest.clone());
        out.push(self.config_digest.clone());
        out.extend(self.layers.iter().map(|l| l.blob.clone()));
        out.sort();
        out.dedup();
        out
    }

    /// Chain IDs of its layers, base first.
    pub fn chain_ids(&self) -> Vec<Digest> {
        self.layers.iter().map(|l| l.chain_id.clone()).collect()
    }
}

/// A container's rootfs, holding its image's layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The container ID.
    pub id: String,
    /// The image it was made from.
    pub image: String,
    /// Its layers' chain IDs, base first.
    pub chain_ids: Vec<Digest>,
    /// `overlay` or `copy`.
    pub mode: String,
}

/// The open metadata database.
#[derive(Debug)]
pub struct Metadata {
    db: Database,
    path: PathBuf,
}

fn set_ref(
    table: &mut redb::Table<'_, &str, u64>,
    key: &str,
    delta: i64,
) -> Result<(), redb::Error> {
    let current = table.get(key)?.map(|v| v.value()).unwrap_or(0);
    let next = (current as i64 + delta).max(0) as u64;
    if next == 0 {
        table.remove(key)?;
    } else {
        table.insert(key, next)?;
    }
    Ok(())
}

fn dedup(mut v: Vec<Digest>) -> Vec<Digest> {
    v.sort();
    v.dedup();
    v
}

impl Metadata {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Metadata> {
        let meta = Metadata {
            db: Database::create(path).map_err(|e| Self::err_at(path, e))?,
            path: path.to_path_buf(),
        };
        meta.write(|txn| {
            txn.open_table(IMAGES)?;
            txn.open_table(CONTAINERS)?;
            txn.open_table(BLOB_REFS)?;
            txn.open_table(LAYER_REFS)?;
            Ok(())
        })?;
        Ok(meta)
    }

    fn err_at(path: &Path, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Metadata {
            path: path.to_path_buf(),
            message: e.into().to_string(),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| Self::err_at(&self.path, e))?;
        let out = f(&txn).map_err(|e| Self::err_at(&self.path, e))?;
        txn.commit().map_err(|e| Self::err_at(&self.path, e))?;
        Ok(out)
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| StoreError::Metadata {
            path: self.path.clone(),
            message: format!("corrupt record: {e}"),
        })
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        // Serialising these plain structs cannot fail.
        serde_json::to_vec(value).unwrap_or_default()
    }

    /// Records `image` under its name, replacing (and releasing) any
    /// previous record with that name. Returns the previous record.
    pub fn put_image(&self, image: &ImageRecord) -> Result<Option<ImageRecord>> {
        let encoded = Self::encode(image);
        let old_bytes = self.write(|txn| {
            let mut images = txn.open_table(IMAGES)?;
            let old = images
                .insert(image.name.as_str(), encoded.as_slice())?
                .map(|v| v.value().to_vec());
            drop(images);
            let mut blobs = txn.open_table(BLOB_REFS)?;
            let mut layers = txn.open_table(LAYER_REFS)?;
            if let Some(old) = &old {
                if let Ok(old) = serde_json::from_slice::<ImageRecord>(old) {
                    for b in old.blobs() {
                        set_ref(&mut blobs, b.hex(), -1)?;
                    }
                    for c in dedup(old.chain_ids()) {
                        set_ref(&mut layers, c.hex(), -1)?;
                    }
                }
            }
            for b in image.blobs() {
                set_ref(&mut blobs, b.hex(), 1)?;
            }
            for c in dedup(image.chain_ids()) {
                set_ref(&mut layers, c.hex(), 1)?;
            }
            Ok(old)
        })?;
        old_bytes.map(|b| self.decode(&b)).transpose()
    }

    /// The image named `name`.
    pub fn get_image(&self, name: &str) -> Result<Option<ImageRecord>> {
        let bytes = self.read_one(IMAGES, name)?;
        bytes.map(|b| self.decode(&b)).transpose()
    }

    fn read_one(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| Self::err_at(&self.path, e))?;
        let table = txn
            .open_table(table)
            .map_err(|e| Self::err_at(&self.path, e))?;
        let value = table.get(key).map_err(|e| Self::err_at(&self.path, e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    fn read_all(&self, table: TableDefinition<&str, &[u8]>) -> Result<Vec<Vec<u8>>> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| Self::err_at(&self.path, e))?;
        let table = txn
            .open_table(table)
            .map_err(|e| Self::err_at(&self.path, e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| Self::err_at(&self.path, e))? {
            let (_, v) = row.map_err(|e| Self::err_at(&self.path, e))?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// Every image, by name.
    pub fn list_images(&self) -> Result<Vec<ImageRecord>> {
        self.read_all(IMAGES)?
            .iter()
            .map(|b| self.decode(b))
            .collect()
    }

    /// Removes image `name`, releasing its blobs and layers.
    pub fn remove_image(&self, name: &str) -> Result<Option<ImageRecord>> {
        let old = self.write(|txn| {
            let mut images = txn.open_table(IMAGES)?;
            let old = images.remove(name)?.map(|v| v.value().to_vec());
            drop(images);
            if let Some(Ok(old)) = old.as_deref().map(serde_json::from_slice::<ImageRecord>) {
                let mut blobs = txn.open_table(BLOB_REFS)?;
                for b in old.blobs() {
                    set_ref(&mut blobs, b.hex(), -1)?;
                }
                let mut layers = txn.open_table(LAYER_REFS)?;
                for c in dedup(old.chain_ids()) {
                    set_ref(&mut layers, c.hex(), -1)?;
                }
            }
            Ok(old)
        })?;
        old.map(|b| self.decode(&b)).transpose()
    }

    /// Records a container's rootfs; fails if the ID is taken.
    pub fn put_container(&self, container: &ContainerRecord) -> Result<()> {
        let encoded = Self::encode(container);
        let taken = self.write(|txn| {
            let mut containers = txn.open_table(CONTAINERS)?;
            if containers.get(container.id.as_str())?.is_some() {
                return Ok(true);
            }
            containers.insert(container.id.as_str(), encoded.as_slice())?;
            drop(containers);
            let mut layers = txn.open_table(LAYER_REFS)?;
            for c in dedup(container.chain_ids.clone()) {
                set_ref(&mut layers, c.hex(), 1)?;
            }
            Ok(false)
        })?;
        if taken {
            return Err(StoreError::Container {
                container: container.id.clone(),
                reason: "already has a rootfs".to_owned(),
            });
        }
        Ok(())
    }

    /// The container `id`.
    pub fn get_container(&self, id: &str) -> Result<Option<ContainerRecord>> {
        let bytes = self.read_one(CONTAINERS, id)?;
        bytes.map(|b| self.decode(&b)).transpose()
    }

    /// Every container.
    pub fn list_containers(&self) -> Result<Vec<ContainerRecord>> {
        self.read_all(CONTAINERS)?
            .iter()
            .map(|b| self.decode(b))
            .collect()
    }

    /// Removes container `id`, releasing its layers.
    pub fn remove_container(&self, id: &str) -> Result<Option<ContainerRecord>> {
        let old = self.write(|txn| {
            let mut containers = txn.open_table(CONTAINERS)?;
            let old = containers.remove(id)?.map(|v| v.value().to_vec());
            drop(containers);
            if let Some(Ok(old)) = old
                .as_deref()
                .map(serde_json::from_slice::<ContainerRecord>)
            {
                let mut layers = txn.open_table(LAYER_REFS)?;
                for c in dedup(old.chain_ids) {
                    set_ref(&mut layers, c.hex(), -1)?;
                }
            }
            Ok(old)
        })?;
        old.map(|b| self.decode(&b)).transpose()
    }

    fn refs(&self, table: TableDefinition<&str, u64>) -> Result<HashMap<Digest, u64>> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| Self::err_at(&self.path, e))?;
        let table = txn
            .open_table(table)
            .map_err(|e| Self::err_at(&self.path, e))?;
        let mut out = HashMap::new();
        for row in table.iter().map_err(|e| Self::err_at(&self.path, e))? {
            let (k, v) = row.map_err(|e| Self::err_at(&self.path, e))?;
            out.insert(Digest::from_hex(k.value())?, v.value());
        }
        Ok(out)
    }

    /// Blob digest → number of images holding it.
    pub fn blob_refs(&self) -> Result<HashMap<Digest, u64>> {
        self.refs(BLOB_REFS)
    }

    /// Chain ID → number of images and containers holding it.
    pub fn layer_refs(&self) -> Result<HashMap<Digest, u64>> {
        self.refs(LAYER_REFS)
    }
}
