//! Assembles a complete fixtures directory: the rootfs, the prebuilt
//! bundles, the OCI layouts, the docker archives, and finally
//! `fixtures.json`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::busybox_rootfs::Busybox;
use crate::docker_archive::write_archive;
use crate::error::Result;
use crate::images::{Image, ImageSet};
use crate::layer_tar::LayerCompression;
use crate::manifest::{BundleInfo, BusyboxInfo, FORMAT, FixturesManifest};
use crate::oci_layout::LayoutWriter;
use crate::runtime_bundle::make_bundle;

/// The rootfs directory inside a fixtures directory.
pub const ROOTFS: &str = "rootfs";
/// Parent of the prebuilt bundles.
pub const BUNDLES: &str = "bundles";
/// Parent of the OCI layouts.
pub const OCI: &str = "oci";
/// Parent of the docker archives.
pub const DOCKER_ARCHIVES: &str = "docker-archive";
/// The tag every layout uses.
pub const TAG: &str = "latest";

/// The prebuilt bundles and their `process.args`.
pub const BUNDLE_ARGS: &[(&str, &[&str])] = &[
    ("true", &["/bin/true"]),
    (
        "sh",
        &[
            "/bin/sh",
            "-c",
            "echo \"hello from berth: hostname $(hostname), pid $$\"",
        ],
    ),
    ("sleep", &["/bin/sleep", "3600"]),
];

/// Builds everything into `dir` (an empty directory) and returns what was
/// written to its `fixtures.json`.
pub fn build_all(dir: &Path, busybox: &Busybox, key: &str) -> Result<FixturesManifest> {
    let rootfs_tree = busybox.rootfs()?;
    let rootfs = dir.join(ROOTFS);
    rootfs_tree.materialize(&rootfs)?;

    let mut bundles = BTreeMap::new();
    for &(name, args) in BUNDLE_ARGS {
        let rel = format!("{BUNDLES}/{name}");
        make_bundle(&rootfs, &dir.join(&rel), args)?;
        bundles.insert(
            name.to_owned(),
            BundleInfo {
                path: rel,
                args: args.iter().map(|&a| a.to_owned()).collect(),
            },
        );
    }

    let images = ImageSet::new(&rootfs_tree)?;
    // Each layout holds one image, or an index over several platforms.
    let layouts: [(&str, Vec<(&Image, LayerCompression)>); 5] = [
        (
            "busybox-gzip",
            vec![(&images.busybox, LayerCompression::Gzip)],
        ),
        (
            "busybox-zstd",
            vec![(&images.busybox, LayerCompression::Zstd)],
        ),
        (
            "busybox-uncompressed",
            vec![(&images.busybox, LayerCompression::None)],
        ),
        (
            "multi-layer",
            vec![(&images.multi_layer, LayerCompression::Gzip)],
        ),
        (
            "index-two-platforms",
            vec![
                (&images.platform_amd64, LayerCompression::Gzip),
                (&images.platform_arm64, LayerCompression::Gzip),
            ],
        ),
    ];
    let mut oci_layouts = BTreeMap::new();
    for (name, members) in layouts {
        let rel = format!("{OCI}/{name}");
        let layout = LayoutWriter::create(&dir.join(&rel))?;
        let mut written = members
            .into_iter()
            .map(|(image, compression)| layout.image(image, compression))
            .collect::<Result<Vec<_>>>()?;
        let target = if written.len() == 1 {
            written.remove(0)
        } else {
            layout.index(written)?
        };
        oci_layouts.insert(name.to_owned(), layout.finish(vec![(TAG, target)], &rel)?);
    }

    // Docker's format has uncompressed layers only.
    let archives = [
        ("busybox", "berth.test/busybox:latest", &images.busybox),
        (
            "multi-layer",
            "berth.test/multi-layer:latest",
            &images.multi_layer,
        ),
    ];
    let mut docker_archives = BTreeMap::new();
    for (name, repo_tag, image) in archives {
        let rel = format!("{DOCKER_ARCHIVES}/{name}.tar");
        let info = write_archive(image, &[repo_tag.to_owned()], &dir.join(&rel), &rel)?;
        docker_archives.insert(name.to_owned(), info);
    }

    let manifest = FixturesManifest {
        format: FORMAT,
        key: key.to_owned(),
        busybox: BusyboxInfo {
            path: busybox.path.display().to_string(),
            sha256: busybox.sha256.clone(),
            applets: busybox.applets.len(),
        },
        rootfs: ROOTFS.to_owned(),
        bundles,
        oci_layouts,
        docker_archives,
    };
    manifest.write(dir)?;
    Ok(manifest)
}
