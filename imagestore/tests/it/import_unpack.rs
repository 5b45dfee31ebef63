//! Importing the fixture layouts unpacks exactly the busybox tree.

use std::os::unix::fs::MetadataExt;

use berth_imagestore::{Platform, StoreError};

use crate::common::{assert_root, fixtures, open_store, snapshot};

fn check_busybox_layout(name: &str) {
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let record = store
        .import_oci_layout(
            &fx.oci_layout(name),
            Some("latest"),
            "berth.test/busybox",
            None,
        )
        .expect("import");
    assert_eq!(record.name, "berth.test/busybox:latest");
    assert_eq!(record.layers.len(), 1);
    let layer = store.layer_dir(&record.layers[0].chain_id);
    // Single layer: chain ID = diff ID.
    assert_eq!(record.layers[0].chain_id, record.layers[0].diff_id);

    let got = snapshot(&layer);
    let want = snapshot(&fx.rootfs());
    assert!(want.len() > 100, "fixture rootfs looks empty");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{name}: paths"
    );
    for (path, node) in &want {
        let mut expected = node.clone();
        // The layer tar records uid/gid 0.
        expected.uid = 0;
        expected.gid = 0;
        assert_eq!(got[path], expected, "{name}: {path}");
    }
    let sh = std::fs::symlink_metadata(layer.join("bin/sh")).expect("bin/sh");
    assert!(sh.file_type().is_symlink(), "bin/sh is a symlink");
    let busybox = std::fs::metadata(layer.join("bin/busybox")).expect("busybox");
    assert_eq!(busybox.mode() & 0o111, 0o111, "busybox is executable");
    let tmp = std::fs::metadata(layer.join("tmp")).expect("tmp");
    assert_eq!(tmp.mode() & 0o7777, 0o1777, "sticky /tmp");
    // Blobs: manifest, config, layer.
    assert_eq!(store.blobs().list().expect("list").len(), 3);
    assert_eq!(store.images().expect("images").len(), 1);
}

#[test]
fn gzip_layout_unpacks_busybox_tree() {
    check_busybox_layout("busybox-gzip");
}

#[test]
fn zstd_layout_unpacks_busybox_tree() {
    check_busybox_layout("busybox-zstd");
}

#[test]
fn uncompressed_layout_unpacks_busybox_tree() {
    check_busybox_layout("busybox-uncompressed");
}

#[test]
fn multi_layer_layout_has_overlay_whiteouts() {
    use berth_rootfs_fixtures::multi_layer::*;
    assert_root("overlayfs whiteouts");
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let record = store
        .import_oci_layout(
            &fx.oci_layout("multi-layer"),
            Some("latest"),
            "berth.test/multi",
            None,
        )
        .expect("import");
    assert_eq!(record.layers.len(), 3);
    let top = store.layer_dir(&record.layers[2].chain_id);
    let wh = std::fs::symlink_metadata(top.join(WHITED_OUT_FILE)).expect("whiteout");
    assert!(
        berth_imagestore::whiteouts::is_whiteout(&wh),
        "{WHITED_OUT_FILE} is a 0:0 char device"
    );
    assert!(berth_imagestore::whiteouts::is_opaque(&top.join(OPAQUE_DIR)).expect("xattr"));
    assert!(!top.join(OPAQUE_DIR).join(".wh..wh..opq").exists());
    assert_eq!(
        std::fs::read_to_string(top.join(RELEASE_FILE)).expect("release"),
        RELEASE_CONTENTS
    );
}

#[test]
fn index_layout_picks_platform() {
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let layout = fx.oci_layout("index-two-platforms");
    let amd = store
        .import_oci_layout(
            &layout,
            Some("latest"),
            "berth.test/two:amd",
            Some(&"linux/amd64".parse().expect("p")),
        )
        .expect("import amd64");
    let arm = store
        .import_oci_layout(
            &layout,
            Some("latest"),
            "berth.test/two:arm",
            Some(&"linux/arm64".parse().expect("p")),
        )
        .expect("import arm64");
    let read = |r: &berth_imagestore::ImageRecord| {
        let top = store.layer_dir(&r.layers.last().expect("layer").chain_id);
        std::fs::read_to_string(top.join(berth_rootfs_fixtures::PLATFORM_FILE))
            .expect("platform file")
    };
    assert_eq!(read(&amd), "amd64\n");
    assert_eq!(read(&arm), "arm64\n");
    assert_eq!(arm.platform, "linux/arm64");
    assert!(amd.index_digest.is_some() && amd.index_digest == arm.index_digest);
    let err = store
        .import_oci_layout(
            &layout,
            Some("latest"),
            "x",
            Some(&"linux/s390x".parse::<Platform>().expect("p")),
        )
        .expect_err("no s390x");
    assert!(
        matches!(err, StoreError::NoMatchingPlatform { .. }),
        "{err}"
    );
}

#[test]
fn store_reopens_with_images() {
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_store(dir.path());
        store
            .import_oci_layout(&fx.oci_layout("busybox-gzip"), None, "busybox", None)
            .expect("import");
    }
    let store = open_store(dir.path());
    let image = store
        .image("docker.io/library/busybox:latest")
        .expect("image after reopen");
    assert!(
        store
            .layer_dir(&image.layers[0].chain_id)
            .join("bin/busybox")
            .is_file()
    );
}

#[test]
fn docker_archives_import_and_share_layers_with_oci_imports() {
    assert_root("whiteouts of the multi-layer archive");
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let busybox = store
        .import_docker_archive(&fx.docker_archive("busybox"), None, None)
        .expect("import busybox archive");
    assert_eq!(busybox.name, "berth.test/busybox:latest");
    let layer = store.layer_dir(&busybox.layers[0].chain_id);
    let got = snapshot(&layer);
    let want = snapshot(&fx.rootfs());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );

    let from_archive = store
        .import_docker_archive(
            &fx.docker_archive("multi-layer"),
            Some("berth.test/multi-layer:latest"),
            Some("archive/multi"),
        )
        .expect("import multi-layer archive");
    assert_eq!(from_archive.name, "docker.io/archive/multi:latest");
    assert_eq!(from_archive.layers.len(), 3);
    let unpacked = store.stats().layers_unpacked;
    assert_eq!(unpacked, 3, "base layer shared with the busybox archive");
    // The same image from the OCI layout (gzip blobs) has the same diff IDs,
    // so the same chain IDs: nothing new is unpacked.
    let from_layout = store
        .import_oci_layout(&fx.oci_layout("multi-layer"), None, "layout/multi", None)
        .expect("import layout");
    assert_eq!(from_layout.chain_ids(), from_archive.chain_ids());
    assert_eq!(store.stats().layers_unpacked, unpacked);
    assert_eq!(
        store
            .image("docker.io/archive/multi:latest")
            .expect("image")
            .config_digest,
        from_layout.config_digest
    );
}

#[test]
fn oci_archive_imports_like_the_layout() {
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("busybox.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&archive).expect("create"));
        b.append_dir_all(".", fx.oci_layout("busybox-zstd"))
            .expect("pack layout");
        b.finish().expect("finish");
    }
    let store = open_store(dir.path());
    let from_archive = store
        .import_oci_archive(&archive, Some("latest"), "berth.test/from-archive", None)
        .expect("import archive");
    let from_layout = store
        .import_oci_layout(
            &fx.oci_layout("busybox-zstd"),
            Some("latest"),
            "berth.test/from-layout",
            None,
        )
        .expect("import layout");
    assert_eq!(from_archive.manifest_digest, from_layout.manifest_digest);
    assert_eq!(from_archive.layers, from_layout.layers);
    assert_eq!(store.stats().layers_unpacked, 1);
    assert!(
        store
            .layer_dir(&from_archive.layers[0].chain_id)
            .join("bin/busybox")
            .is_file()
    );

    // A tampered archive: a blob whose content does not match its name.
    let evil = dir.path().join("evil.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&evil).expect("create"));
        let name = format!("blobs/sha256/{}", "1".repeat(64));
        let mut h = tar::Header::new_gnu();
        h.set_path(&name).expect("path");
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).expect("append");
        b.finish().expect("finish");
    }
    let err = store
        .import_oci_archive(&evil, None, "evil", None)
        .expect_err("tampered archive");
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(store.blobs().ingest_entries().expect("ingest").is_empty());
}
