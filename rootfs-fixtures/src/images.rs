//! The container images the fixtures ship, described independently of how
//! they are packaged: their layers (as [`Layer`] trees and encoded tars), the
//! diff IDs, and the image configuration. `oci_layout` and `docker_archive`
//! package these.

use std::path::Path;

use oci_spec::image::{Arch, Config, History, ImageConfiguration, Os, RootFs};

use crate::busybox_rootfs::PATH_ENV;
use crate::digest::sha256_digest;
use crate::error::Result;
use crate::layer::Layer;
use crate::layer_tar::to_tar;

/// Timestamp used for every `created` field: the epoch, for reproducibility.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// The multi-layer image's contents, for tests that check how layers apply.
pub mod multi_layer {
    /// Added by layer 2, rewritten by layer 3.
    pub const RELEASE_FILE: &str = "etc/berth-release";
    /// Final contents of [`RELEASE_FILE`].
    pub const RELEASE_CONTENTS: &str = "berth multi-layer fixture: layer 3\n";
    /// Added by layer 2, kept.
    pub const KEPT_FILE: &str = "usr/share/berth/a.txt";
    /// Added by layer 2, deleted by a `.wh.b.txt` whiteout in layer 3.
    pub const WHITED_OUT_FILE: &str = "usr/share/berth/b.txt";
    /// Filled by layer 2, made opaque (`.wh..wh..opq`) and refilled by layer 3.
    pub const OPAQUE_DIR: &str = "opt/berth/data";
    /// What layer 2 put into [`OPAQUE_DIR`] (all hidden in the final image).
    pub const OPAQUE_DIR_LOWER: &[&str] = &["old-1.txt", "old-2.txt", "old-dir"];
    /// The only entries of [`OPAQUE_DIR`] in the final image.
    pub const OPAQUE_DIR_FINAL: &[&str] = &["new.txt"];
}

/// Path of the platform marker file in the `index-two-platforms` images; it
/// holds the architecture name and a newline.
pub const PLATFORM_FILE: &str = "platform";

/// One encoded layer of an image.
#[derive(Debug, Clone)]
pub struct ImageLayer {
    /// The uncompressed tar.
    pub tar: Vec<u8>,
    /// `sha256:` digest of [`ImageLayer::tar`] (the diff ID).
    pub diff_id: String,
    /// The history entry's `created_by`.
    pub created_by: String,
}

/// A single-platform image: config fields plus its layers, bottom first.
#[derive(Debug, Clone)]
pub struct Image {
    /// CPU architecture.
    pub arch: Arch,
    /// Layers, base first.
    pub layers: Vec<ImageLayer>,
}

impl Image {
    /// Encodes `layers` (tree + history text, base first).
    pub fn new(name: &str, arch: Arch, layers: &[(&Layer, &str)]) -> Result<Image> {
        let layers = layers
            .iter()
            .map(|&(layer, created_by)| {
                let tar = to_tar(layer, Path::new(name))?;
                Ok(ImageLayer {
                    diff_id: sha256_digest(&tar),
                    tar,
                    created_by: created_by.to_owned(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Image { arch, layers })
    }

    /// The image configuration (shared by the OCI and Docker encodings):
    /// `Cmd ["/bin/sh"]`, `Env [PATH=…]`, diff IDs and one history entry per
    /// layer, all dated at the epoch.
    pub fn config(&self) -> ImageConfiguration {
        let mut exec = Config::default();
        exec.set_env(Some(vec![PATH_ENV.to_owned()]))
            .set_cmd(Some(vec!["/bin/sh".to_owned()]));
        let mut rootfs = RootFs::default();
        rootfs.set_diff_ids(self.layers.iter().map(|l| l.diff_id.clone()).collect());
        let history = self
            .layers
            .iter()
            .map(|layer| {
                let mut h = History::default();
                h.set_created(Some(EPOCH.to_owned()))
                    .set_created_by(Some(layer.created_by.clone()));
                h
            })
            .collect();
        let mut config = ImageConfiguration::default();
        config
            .set_created(Some(EPOCH.to_owned()))
            .set_architecture(self.arch.clone())
            .set_os(Os::Linux)
            .set_config(Some(exec))
            .set_rootfs(rootfs)
            .set_history(Some(history));
        config
    }

    /// The diff IDs, base first.
    pub fn diff_ids(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.diff_id.clone()).collect()
    }
}

/// All images the fixtures package, built from the busybox rootfs tree.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// Single layer: the busybox rootfs.
    pub busybox: Image,
    /// Busybox + an additions layer + a layer with whiteouts.
    pub multi_layer: Image,
    /// linux/amd64 member of the two-platform index: busybox + `/platform`.
    pub platform_amd64: Image,
    /// linux/arm64 member of the two-platform index: just `/platform`.
    pub platform_arm64: Image,
}

const BUSYBOX_HISTORY: &str = "berth-rootfs-fixtures: busybox rootfs";

impl ImageSet {
    /// Builds every image from the rootfs tree.
    pub fn new(rootfs: &Layer) -> Result<ImageSet> {
        use multi_layer::*;

        let mut additions = Layer::new();
        additions
            .file(RELEASE_FILE, 0o644, "berth multi-layer fixture: layer 2\n")?
            .file(KEPT_FILE, 0o644, "a\n")?
            .file(WHITED_OUT_FILE, 0o644, "b\n")?
            .file(&format!("{OPAQUE_DIR}/old-1.txt"), 0o644, "old 1\n")?
            .file(&format!("{OPAQUE_DIR}/old-2.txt"), 0o644, "old 2\n")?
            .file(
                &format!("{OPAQUE_DIR}/old-dir/nested.txt"),
                0o644,
                "nested\n",
            )?;

        let mut deletions = Layer::new();
        deletions
            .file(RELEASE_FILE, 0o644, RELEASE_CONTENTS)?
            .whiteout(WHITED_OUT_FILE)?
            .opaque(OPAQUE_DIR)?
            .file(&format!("{OPAQUE_DIR}/new.txt"), 0o644, "new\n")?;

        let mut amd64_marker = Layer::new();
        amd64_marker.file(PLATFORM_FILE, 0o644, "amd64\n")?;
        let mut arm64_marker = Layer::new();
        arm64_marker.file(PLATFORM_FILE, 0o644, "arm64\n")?;

        Ok(ImageSet {
            busybox: Image::new("busybox", Arch::Amd64, &[(rootfs, BUSYBOX_HISTORY)])?,
            multi_layer: Image::new(
                "multi-layer",
                Arch::Amd64,
                &[
                    (rootfs, BUSYBOX_HISTORY),
                    (
                        &additions,
                        "berth-rootfs-fixtures: add /etc/berth-release, /usr/share/berth, /opt/berth/data",
                    ),
                    (
                        &deletions,
                        "berth-rootfs-fixtures: rewrite berth-release, whiteout b.txt, opaque /opt/berth/data",
                    ),
                ],
            )?,
            platform_amd64: Image::new(
                "index-two-platforms/amd64",
                Arch::Amd64,
                &[
                    (rootfs, BUSYBOX_HISTORY),
                    (&amd64_marker, "berth-rootfs-fixtures: /platform = amd64"),
                ],
            )?,
            platform_arm64: Image::new(
                "index-two-platforms/arm64",
                Arch::ARM64,
                &[(&arm64_marker, "berth-rootfs-fixtures: /platform = arm64")],
            )?,
        })
    }
}
