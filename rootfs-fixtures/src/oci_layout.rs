//! Writes OCI image layouts (image-spec 1.1): `oci-layout`, content-addressed
//! `blobs/sha256/…`, image manifests, nested image indexes, and `index.json`
//! with tags as `org.opencontainers.image.ref.name` annotations.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, Digest, ImageIndex, ImageManifestBuilder, MediaType, Platform, SCHEMA_VERSION,
};

use crate::digest::{canonical_json, sha256_digest, sha256_hex};
use crate::error::{FixtureError, Result};
use crate::images::Image;
use crate::layer_tar::{LayerCompression, compress};
use crate::manifest::{ImageInfo, LayerInfo, LayoutInfo, TagInfo};

/// The annotation that names a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Something a tag in `index.json` can point at.
#[derive(Debug, Clone)]
pub struct Written {
    /// Descriptor of the manifest or index blob.
    pub descriptor: Descriptor,
    /// The images it leads to.
    pub images: Vec<ImageInfo>,
}

/// An OCI layout under construction.
#[derive(Debug)]
pub struct LayoutWriter {
    dir: PathBuf,
}

impl LayoutWriter {
    /// Creates `dir` with `oci-layout` and an empty blob store.
    pub fn create(dir: &Path) -> Result<LayoutWriter> {
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(|e| FixtureError::io("create directory", &blobs, e))?;
        let layout = dir.join("oci-layout");
        fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(|e| FixtureError::io("write", &layout, e))?;
        Ok(LayoutWriter {
            dir: dir.to_path_buf(),
        })
    }

    /// Stores `data` as a blob and returns its descriptor.
    pub fn blob(&self, media_type: MediaType, data: &[u8]) -> Result<Descriptor> {
        let path = self.dir.join("blobs").join("sha256").join(sha256_hex(data));
        if !path.exists() {
            fs::write(&path, data).map_err(|e| FixtureError::io("write", &path, e))?;
        }
        Ok(Descriptor::new(
            media_type,
            data.len() as u64,
            self.digest(data)?,
        ))
    }

    fn digest(&self, data: &[u8]) -> Result<Digest> {
        sha256_digest(data)
            .parse()
            .map_err(|source| FixtureError::Oci {
                what: "digest",
                path: self.dir.clone(),
                source,
            })
    }

    /// Stores an image's layers (compressed as asked), config and manifest.
    pub fn image(&self, image: &Image, compression: LayerCompression) -> Result<Written> {
        let layer_type = match compression {
            LayerCompression::None => MediaType::ImageLayer,
            LayerCompression::Gzip => MediaType::ImageLayerGzip,
            LayerCompression::Zstd => MediaType::ImageLayerZstd,
        };
        let mut layers = Vec::new();
        let mut layer_infos = Vec::new();
        for layer in &image.layers {
            let blob = compress(&layer.tar, compression, &self.dir)?;
            let descriptor = self.blob(layer_type.clone(), &blob)?;
            layer_infos.push(LayerInfo {
                media_type: layer_type.to_string(),
                digest: descriptor.digest().to_string(),
                size: descriptor.size(),
                diff_id: layer.diff_id.clone(),
            });
            layers.push(descriptor);
        }
        let config_json = canonical_json(&image.config(), &self.dir)?;
        let config = self.blob(MediaType::ImageConfig, &config_json)?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(config.clone())
            .layers(layers)
            .build()
            .map_err(|source| FixtureError::Oci {
                what: "image manifest",
                path: self.dir.clone(),
                source,
            })?;
        let manifest_json = canonical_json(&manifest, &self.dir)?;
        let mut descriptor = self.blob(MediaType::ImageManifest, &manifest_json)?;
        descriptor.set_platform(Some(platform(image)));
        let info = ImageInfo {
            manifest_digest: descriptor.digest().to_string(),
            platform: format!("linux/{}", image.arch),
            config_digest: config.digest().to_string(),
            layers: layer_infos,
        };
        Ok(Written {
            descriptor,
            images: vec![info],
        })
    }

    /// Stores an image index blob listing `members` (with their platforms).
    pub fn index(&self, members: Vec<Written>) -> Result<Written> {
        let mut index = ImageIndex::default();
        index.set_media_type(Some(MediaType::ImageIndex));
        let mut images = Vec::new();
        let mut manifests = Vec::new();
        for member in members {
            manifests.push(member.descriptor);
            images.extend(member.images);
        }
        index.set_manifests(manifests);
        let json = canonical_json(&index, &self.dir)?;
        let descriptor = self.blob(MediaType::ImageIndex, &json)?;
        Ok(Written { descriptor, images })
    }

    /// Writes `index.json` with one entry per tag and returns the summary
    /// recorded in `fixtures.json` (`path` is the layout's relative path).
    pub fn finish(self, tags: Vec<(&str, Written)>, path: &str) -> Result<LayoutInfo> {
        let mut manifests = Vec::new();
        let mut infos = BTreeMap::new();
        for (tag, written) in tags {
            let mut descriptor = written.descriptor;
            descriptor
                .set_annotations(Some(HashMap::from([(REF_NAME.to_owned(), tag.to_owned())])));
            infos.insert(
                tag.to_owned(),
                TagInfo {
                    media_type: descriptor.media_type().to_string(),
                    digest: descriptor.digest().to_string(),
                    size: descriptor.size(),
                    images: written.images,
                },
            );
            manifests.push(descriptor);
        }
        let mut index = ImageIndex::default();
        index
            .set_media_type(Some(MediaType::ImageIndex))
            .set_manifests(manifests);
        let index_path = self.dir.join("index.json");
        let json = canonical_json(&index, &index_path)?;
        fs::write(&index_path, json).map_err(|e| FixtureError::io("write", &index_path, e))?;
        Ok(LayoutInfo {
            path: path.to_owned(),
            tags: infos,
        })
    }
}

fn platform(image: &Image) -> Platform {
    let mut platform = Platform::default();
    platform
        .set_architecture(image.arch.clone())
        .set_os(oci_spec::image::Os::Linux);
    platform
}
