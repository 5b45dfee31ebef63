//! Encodes a [`Layer`] as a well-formed, reproducible tar archive: ustar
//! headers, entries in path order, mtime 0, numeric owner 0:0 with empty
//! user/group names, and the two 512-byte zero blocks that end the archive.
//! Also the compression of layer tars (gzip without name/timestamp, zstd),
//! each at a fixed level so equal inputs give byte-identical blobs.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use tar::{EntryType, Header};

use crate::error::{FixtureError, Result};
use crate::layer::{EntryKind, Layer};

/// gzip level used for every gzip layer.
pub const GZIP_LEVEL: u32 = 6;
/// zstd level used for every zstd layer.
pub const ZSTD_LEVEL: i32 = 3;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerCompression {
    /// Plain tar.
    None,
    /// tar+gzip.
    Gzip,
    /// tar+zstd.
    Zstd,
}

/// Encodes `layer` as an uncompressed tar. `name` only identifies the layer
/// in errors.
pub fn to_tar(layer: &Layer, name: &Path) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in layer.entries() {
        let mut header = Header::new_ustar();
        header.set_mode(entry.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let (entry_type, data): (EntryType, &[u8]) = match &entry.kind {
            EntryKind::Dir => (EntryType::Directory, &[]),
            EntryKind::File(data) => (EntryType::Regular, data),
            EntryKind::Symlink(_) => (EntryType::Symlink, &[]),
        };
        header.set_entry_type(entry_type);
        header.set_size(data.len() as u64);
        let tar_path = match entry.kind {
            EntryKind::Dir => format!("{}/", entry.path),
            _ => entry.path.clone(),
        };
        let entry_err = |e| FixtureError::io("encode tar entry", name.join(&entry.path), e);
        header.set_path(&tar_path).map_err(entry_err)?;
        if let EntryKind::Symlink(target) = &entry.kind {
            header.set_link_name(target).map_err(entry_err)?;
        }
        header.set_cksum();
        builder.append(&header, data).map_err(entry_err)?;
    }
    // `into_inner` finishes the archive: it appends the two zero blocks.
    builder
        .into_inner()
        .map_err(|e| FixtureError::io("finish tar", name, e))
}

/// Compresses a layer tar. `name` only identifies the layer in errors.
pub fn compress(tar: &[u8], compression: LayerCompression, name: &Path) -> Result<Vec<u8>> {
    match compression {
        LayerCompression::None => Ok(tar.to_vec()),
        LayerCompression::Gzip => {
            // No file name, mtime 0, OS "unknown": nothing host-dependent.
            let mut encoder = GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(Vec::new(), Compression::new(GZIP_LEVEL));
            encoder
                .write_all(tar)
                .and_then(|()| encoder.finish())
                .map_err(|e| FixtureError::io("gzip", name, e))
        }
        LayerCompression::Zstd => zstd::bulk::compress(tar, ZSTD_LEVEL)
            .map_err(|e| FixtureError::io("zstd-compress", PathBuf::from(name), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Layer {
        let mut layer = Layer::new();
        layer
            .file("etc/berth-release", 0o644, "layer=3\n")
            .expect("file");
        layer.symlink("bin/sh", "busybox").expect("symlink");
        layer.dir("tmp", 0o1777).expect("dir");
        layer.whiteout("usr/share/berth/b.txt").expect("whiteout");
        layer.opaque("opt/berth/data").expect("opaque");
        layer
    }

    #[test]
    fn tar_is_terminated_sorted_and_normalised() {
        let tar = to_tar(&sample(), Path::new("sample")).expect("tar");
        assert_eq!(tar.len() % 512, 0);
        assert!(tar.len() >= 1024);
        assert!(
            tar[tar.len() - 1024..].iter().all(|&b| b == 0),
            "end-of-archive blocks"
        );

        let mut archive = tar::Archive::new(&tar[..]);
        let mut names = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let header = entry.header();
            assert_eq!(header.mtime().expect("mtime"), 0);
            assert_eq!(header.uid().expect("uid"), 0);
            assert_eq!(header.gid().expect("gid"), 0);
            assert!(header.as_ustar().is_some(), "ustar header");
            assert_eq!(header.username_bytes(), Some(&b""[..]));
            names.push(String::from_utf8(header.path_bytes().into_owned()).expect("utf-8"));
        }
        let mut sorted = names.clone();
        sorted.sort_by(|a, b| a.trim_end_matches('/').cmp(b.trim_end_matches('/')));
        assert_eq!(names, sorted);
        assert!(names.contains(&"usr/share/berth/.wh.b.txt".to_owned()));
        assert!(names.contains(&"opt/berth/data/.wh..wh..opq".to_owned()));
        assert!(names.contains(&"tmp/".to_owned()));
    }

    #[test]
    fn compression_is_reproducible_and_round_trips() {
        let tar = to_tar(&sample(), Path::new("sample")).expect("tar");
        for kind in [
            LayerCompression::None,
            LayerCompression::Gzip,
            LayerCompression::Zstd,
        ] {
            let a = compress(&tar, kind, Path::new("a")).expect("compress");
            let b = compress(&tar, kind, Path::new("b")).expect("compress");
            assert_eq!(a, b, "{kind:?} output differs between runs");
            let round_trip = match kind {
                LayerCompression::None => a,
                LayerCompression::Gzip => {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(&a[..])
                        .read_to_end(&mut out)
                        .expect("gunzip");
                    out
                }
                LayerCompression::Zstd => zstd::decode_all(&a[..]).expect("unzstd"),
            };
            assert_eq!(round_trip, tar, "{kind:?}");
        }
    }

    #[test]
    fn gzip_header_has_no_timestamp_or_name() {
        let tar = to_tar(&sample(), Path::new("sample")).expect("tar");
        let gz = compress(&tar, LayerCompression::Gzip, Path::new("sample")).expect("gzip");
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(gz[3] & 0x08, 0, "FNAME flag set");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "MTIME not zero");
    }
}
