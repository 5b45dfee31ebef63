//! Container rootfs assembly: overlayfs over the shared layers, and the
//! explicit plain-copy fallback; whiteouts and opaque dirs hide lower files.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use berth_imagestore::{ImageStore, RootfsMode, StoreError};
use berth_rootfs_fixtures::multi_layer::*;

use crate::common::{assert_root, fixtures, open_store};

fn import_multi(store: &ImageStore) {
    store
        .import_oci_layout(
            &fixtures().oci_layout("multi-layer"),
            Some("latest"),
            "berth.test/multi",
            None,
        )
        .expect("import");
}

fn is_mounted(path: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let p = path.to_str().expect("utf8");
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

fn assert_final_image_view(root: &Path) {
    assert_eq!(
        fs::read_to_string(root.join(RELEASE_FILE)).expect("release"),
        RELEASE_CONTENTS
    );
    assert!(root.join(KEPT_FILE).is_file(), "{KEPT_FILE} kept");
    assert!(
        fs::symlink_metadata(root.join(WHITED_OUT_FILE)).is_err(),
        "{WHITED_OUT_FILE} must be hidden by the whiteout"
    );
    let listing: BTreeSet<String> = fs::read_dir(root.join(OPAQUE_DIR))
        .expect("opaque dir")
        .map(|e| e.expect("e").file_name().into_string().expect("utf8"))
        .collect();
    let want: BTreeSet<String> = OPAQUE_DIR_FINAL.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        listing, want,
        "opaque dir shows only the top layer's entries"
    );
    assert!(root.join("bin/busybox").is_file());
    assert!(
        fs::symlink_metadata(root.join("bin/sh"))
            .expect("sh")
            .file_type()
            .is_symlink()
    );
}

#[test]
fn overlay_rootfs_hides_whited_out_files() {
    assert_root("overlay rootfs");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    import_multi(&store);
    let rootfs = store
        .prepare_rootfs("berth.test/multi", "c1", RootfsMode::Overlay)
        .expect("prepare overlay");
    assert_eq!(rootfs.mode, RootfsMode::Overlay);
    assert!(
        is_mounted(&rootfs.path),
        "overlay mounted at {}",
        rootfs.path.display()
    );
    assert_final_image_view(&rootfs.path);

    // Writes go to the container's upper dir, never to a shared layer.
    fs::write(rootfs.path.join("etc/new-file"), "c1").expect("write in container");
    fs::remove_file(rootfs.path.join(KEPT_FILE)).expect("delete in container");
    let image = store.image("berth.test/multi").expect("image");
    for layer in &image.layers {
        let d = store.layer_dir(&layer.chain_id);
        assert!(!d.join("etc/new-file").exists());
    }
    assert!(
        store
            .layer_dir(&image.layers[1].chain_id)
            .join(KEPT_FILE)
            .is_file()
    );

    // A second container sees the pristine image.
    let second = store
        .prepare_rootfs("berth.test/multi", "c2", RootfsMode::Overlay)
        .expect("second");
    assert!(second.path.join(KEPT_FILE).is_file());
    assert!(!second.path.join("etc/new-file").exists());

    let err = store
        .prepare_rootfs("berth.test/multi", "c1", RootfsMode::Overlay)
        .expect_err("duplicate id");
    assert!(matches!(err, StoreError::Container { .. }), "{err}");
    assert!(
        is_mounted(&rootfs.path),
        "failed duplicate must not touch c1"
    );

    for id in ["c1", "c2"] {
        store.remove_rootfs(id).expect("remove");
    }
    assert!(!is_mounted(&rootfs.path));
    assert!(!rootfs.path.exists());
    store.remove_rootfs("c1").expect("idempotent");
}

#[test]
fn copy_rootfs_is_equivalent_and_explicit() {
    assert_root("copy rootfs of a layer with whiteouts");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    import_multi(&store);
    let rootfs = store
        .prepare_rootfs("berth.test/multi", "copy1", RootfsMode::Copy)
        .expect("prepare copy");
    assert_eq!(rootfs.mode, RootfsMode::Copy);
    assert!(!is_mounted(&rootfs.path));
    assert_final_image_view(&rootfs.path);
    store.remove_rootfs("copy1").expect("remove");
    assert!(!rootfs.path.exists());
}

#[test]
fn bad_container_ids_and_unknown_images_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    for id in ["", "../x", "a/b", ".hidden"] {
        let err = store
            .prepare_rootfs("x", id, RootfsMode::Copy)
            .expect_err(id);
        assert!(matches!(err, StoreError::Container { .. }), "{id}: {err}");
    }
    let err = store
        .prepare_rootfs("nope", "c", RootfsMode::Copy)
        .expect_err("unknown image");
    assert!(matches!(err, StoreError::ImageNotFound { .. }), "{err}");
}

/// More layers than fit mount(2)'s one-page option string: mounted through
/// the new mount API, in the right order, whiteouts applied.
#[test]
fn overlay_with_more_layers_than_fit_a_page() {
    assert_root("overlay rootfs");
    const LAYERS: usize = 70;
    let tars: Vec<Vec<u8>> = (0..LAYERS)
        .map(|i| {
            let mut b = tar::Builder::new(Vec::new());
            let mut add = |path: &str, data: &[u8]| {
                let mut h = tar::Header::new_gnu();
                h.set_path(path).expect("path");
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_uid(0);
                h.set_gid(0);
                h.set_cksum();
                b.append(&h, data).expect("append");
            };
            add(&format!("layers/file-{i:03}"), format!("{i}\n").as_bytes());
            // Every layer rewrites `top`: the topmost must win.
            add("top", format!("{i}\n").as_bytes());
            if i == LAYERS - 1 {
                add("layers/.wh.file-000", b"");
            }
            b.into_inner().expect("tar")
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("layout");
    crate::common::write_layout(&layout, &tars);
    let store = open_store(dir.path());
    let image = store
        .import_oci_layout(&layout, None, "berth.test/tall", None)
        .expect("import");
    assert_eq!(image.layers.len(), LAYERS);
    let lowerdirs: usize = image
        .layers
        .iter()
        .map(|l| store.layer_dir(&l.chain_id).as_os_str().len() + 1)
        .sum();
    assert!(
        lowerdirs > 4096,
        "the test must exceed mount(2)'s page ({lowerdirs} bytes)"
    );
    let rootfs = store
        .prepare_rootfs("berth.test/tall", "tall", RootfsMode::Overlay)
        .expect("overlay with 70 layers");
    assert!(is_mounted(&rootfs.path));
    assert_eq!(
        fs::read_to_string(rootfs.path.join("top")).expect("top"),
        format!("{}\n", LAYERS - 1)
    );
    assert!(!rootfs.path.join("layers/file-000").exists(), "whited out");
    for i in 1..LAYERS {
        assert!(
            rootfs.path.join(format!("layers/file-{i:03}")).is_file(),
            "file-{i:03}"
        );
    }
    store.remove_rootfs("tall").expect("remove");
    assert!(!is_mounted(&rootfs.path));
}
