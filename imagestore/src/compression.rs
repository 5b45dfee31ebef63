//! Layer media types → decompressors. Layers are decompressed as streams
//! (never a whole layer in memory): gzip via flate2 on the zlib-rs backend,
//! zstd via libzstd, or passed through when uncompressed.

use std::io::{BufReader, Read};

use crate::digest::Digest;
use crate::error::{Result, StoreError};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// tar+gzip (possibly multi-member).
    Gzip,
    /// tar+zstd.
    Zstd,
}

impl Compression {
    /// From a layer media type (OCI and Docker schema2, including the
    /// non-distributable variants).
    pub fn from_media_type(media_type: &str, digest: &Digest) -> Result<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | crate::docker_archive::DOCKER_LAYER_TAR => Ok(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(Compression::Zstd),
            _ => Err(StoreError::UnsupportedMediaType {
                digest: digest.clone(),
                media_type: media_type.to_owned(),
            }),
        }
    }

    /// Wraps `compressed` in the matching streaming decoder.
    pub fn decoder<'a, R: Read + 'a>(
        self,
        compressed: R,
        digest: &Digest,
    ) -> Result<Box<dyn Read + 'a>> {
        const BUF: usize = 256 * 1024;
        Ok(match self {
            Compression::None => Box::new(BufReader::with_capacity(BUF, compressed)),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                BufReader::with_capacity(BUF, compressed),
            )),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(BUF, compressed))
                    .map_err(|source| StoreError::Unpack {
                        digest: digest.clone(),
                        entry: String::new(),
                        source,
                    })?,
            ),
        })
    }
}
