//! Unpacks the gzip OCI layouts with umoci, an independent layer applier, and
//! checks the resulting root filesystems — in particular that the
//! multi-layer image's whiteouts and opaque directory apply as specified.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use berth_rootfs_fixtures::multi_layer;
use common::{fixtures, is_root, run, s};

/// `umoci unpack`s `layout:latest` and returns (tempdir guard, rootfs path).
fn unpack(layout: &Path) -> (tempfile::TempDir, PathBuf) {
    let dest = tempfile::tempdir().expect("tempdir");
    let bundle = dest.path().join("bundle");
    let image = format!("{}:latest", s(layout));
    let mut args = vec!["unpack", "--image", image.as_str()];
    if !is_root() {
        args.push("--rootless");
    }
    args.push(s(&bundle));
    run("umoci", &args);
    let rootfs = bundle.join("rootfs");
    (dest, rootfs)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

#[test]
fn umoci_applies_whiteouts_and_opaque_directories() {
    let (_guard, rootfs) = unpack(&fixtures().oci_layout("multi-layer"));

    let release = fs::read_to_string(rootfs.join(multi_layer::RELEASE_FILE)).expect("release file");
    assert_eq!(release, multi_layer::RELEASE_CONTENTS);
    assert!(rootfs.join(multi_layer::KEPT_FILE).is_file());
    assert!(
        fs::symlink_metadata(rootfs.join(multi_layer::WHITED_OUT_FILE)).is_err(),
        "whited-out file survived"
    );
    assert_eq!(
        names(&rootfs.join(multi_layer::OPAQUE_DIR)),
        multi_layer::OPAQUE_DIR_FINAL
    );
    // No whiteout markers leak into the unpacked tree.
    let parent = Path::new(multi_layer::WHITED_OUT_FILE)
        .parent()
        .expect("parent");
    assert!(
        names(&rootfs.join(parent))
            .iter()
            .all(|n| !n.starts_with(".wh."))
    );
    // The base layer is still there.
    assert!(rootfs.join("bin/busybox").is_file());
}

#[test]
fn umoci_unpacks_a_runnable_busybox_rootfs() {
    let fixtures = fixtures();
    let (guard, rootfs) = unpack(&fixtures.oci_layout("busybox-gzip"));
    assert_eq!(
        fs::read_link(rootfs.join("bin/sh")).expect("readlink"),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read(rootfs.join("bin/busybox")).expect("read"),
        fs::read(fixtures.rootfs().join("bin/busybox")).expect("read")
    );
    // umoci generated a runtime config from the image config.
    let config = common::json(&fs::read(guard.path().join("bundle/config.json")).expect("config"));
    assert_eq!(config["process"]["args"], serde_json::json!(["/bin/sh"]));
    // The unpacked busybox runs (on the host, not in a container).
    let out = run(s(&rootfs.join("bin/busybox")), &["echo", "unpacked"]);
    assert_eq!(out.stdout, b"unpacked\n");
}
