//! Deterministic, cached test fixtures for berth.
//!
//! From the host's static busybox (Debian's `busybox-static`, installed by
//! `scripts/install-deps`) this crate builds, once per input, into
//! `$BERTH_CACHE_DIR/fixtures/<key>/` (default `<workspace>/.cache/fixtures`):
//!
//! - `rootfs/`: a busybox root filesystem;
//! - `bundles/{true,sh,sleep}/`: OCI runtime bundles with runc-like specs;
//! - `oci/{busybox-gzip,busybox-zstd,busybox-uncompressed,multi-layer,index-two-platforms}/`:
//!   OCI image layouts tagged `latest`;
//! - `docker-archive/{busybox,multi-layer}.tar`: `docker save` archives;
//! - `fixtures.json`: what was built, with digests ([`FixturesManifest`]).
//!
//! The key hashes the busybox binary and this crate's sources, so changing
//! either rebuilds. Every blob is byte-reproducible.
//!
//! ```no_run
//! let fixtures = berth_rootfs_fixtures::Fixtures::get()?;
//! let bundle = fixtures.make_bundle(&std::env::temp_dir().join("b"), &["/bin/true"])?;
//! # Ok::<(), berth_rootfs_fixtures::FixtureError>(())
//! ```

mod assemble;
mod busybox_rootfs;
mod cache;
mod digest;
mod docker_archive;
mod error;
mod images;
mod layer;
mod layer_tar;
mod manifest;
mod oci_layout;
mod runtime_bundle;

use std::path::{Path, PathBuf};

pub use assemble::{BUNDLE_ARGS, TAG};
pub use busybox_rootfs::{DEFAULT_BUSYBOX, PATH_ENV};
pub use cache::{CACHE_ENV, default_root};
pub use error::FixtureError;
pub use images::{PLATFORM_FILE, multi_layer};
pub use manifest::{
    ArchiveInfo, BundleInfo, BusyboxInfo, FIXTURES_JSON, FixturesManifest, ImageInfo, LayerInfo,
    LayoutInfo, TagInfo,
};
pub use oci_layout::REF_NAME;
pub use runtime_bundle::{copy_tree, default_spec, write_spec};

use busybox_rootfs::Busybox;

/// A built fixtures directory (`<cache root>/<key>/`). Treat its contents
/// as read-only; use [`Fixtures::make_bundle`] for a writable bundle.
#[derive(Debug, Clone)]
pub struct Fixtures {
    dir: PathBuf,
}

impl Fixtures {
    /// The fixtures in the default cache root ([`default_root`]), built
    /// first if needed.
    pub fn get() -> Result<Fixtures, FixtureError> {
        Self::at(&default_root())
    }

    /// The fixtures in `cache_root/<key>/`, built first if needed (under a
    /// lock, so concurrent callers build once).
    pub fn at(cache_root: &Path) -> Result<Fixtures, FixtureError> {
        Self::at_with_busybox(cache_root, Path::new(DEFAULT_BUSYBOX))
    }

    /// Like [`Fixtures::at`], but with the busybox binary at `busybox`.
    pub fn at_with_busybox(cache_root: &Path, busybox: &Path) -> Result<Fixtures, FixtureError> {
        let busybox = Busybox::probe(busybox)?;
        let key = cache::key(&busybox.sha256);
        let dir = cache::ensure(cache_root, &key, |tmp| {
            assemble::build_all(tmp, &busybox, &key).map(drop)
        })?;
        Ok(Fixtures { dir })
    }

    /// The fixtures directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The busybox rootfs.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join(assemble::ROOTFS)
    }

    /// A prebuilt bundle: `"true"`, `"sh"` or `"sleep"` (see [`BUNDLE_ARGS`]).
    pub fn bundle(&self, name: &str) -> PathBuf {
        self.dir.join(assemble::BUNDLES).join(name)
    }

    /// An OCI layout: `"busybox-gzip"`, `"busybox-zstd"`,
    /// `"busybox-uncompressed"`, `"multi-layer"` or `"index-two-platforms"`.
    pub fn oci_layout(&self, name: &str) -> PathBuf {
        self.dir.join(assemble::OCI).join(name)
    }

    /// A docker archive: `"busybox"` or `"multi-layer"`.
    pub fn docker_archive(&self, name: &str) -> PathBuf {
        self.dir
            .join(assemble::DOCKER_ARCHIVES)
            .join(format!("{name}.tar"))
    }

    /// The parsed `fixtures.json`.
    pub fn manifest(&self) -> Result<FixturesManifest, FixtureError> {
        FixturesManifest::read(&self.dir)
    }

    /// Makes a fresh, writable bundle at `dest`: a copy of the rootfs in
    /// `dest/rootfs` and `dest/config.json` = [`default_spec`]`(args)`.
    /// Returns `dest`. `dest/rootfs` must not exist.
    pub fn make_bundle(&self, dest: &Path, args: &[&str]) -> Result<PathBuf, FixtureError> {
        runtime_bundle::make_bundle(&self.rootfs(), dest, args)
    }
}
