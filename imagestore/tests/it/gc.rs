//! Removing images and garbage collection: frees what nothing references,
//! keeps what another image or a container still holds.

use std::collections::BTreeSet;

use berth_imagestore::{Digest, ImageRecord, RootfsMode};

use crate::common::{fixtures, open_store};

fn blobs_of(r: &ImageRecord) -> BTreeSet<Digest> {
    r.blobs().into_iter().collect()
}

#[test]
fn remove_and_gc_free_only_unshared_content() {
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let busybox = store
        .import_oci_layout(
            &fx.oci_layout("busybox-gzip"),
            None,
            "berth.test/busybox",
            None,
        )
        .expect("busybox");
    let before = store.stats();
    let multi = store
        .import_oci_layout(
            &fx.oci_layout("multi-layer"),
            None,
            "berth.test/multi",
            None,
        )
        .expect("multi");
    // The base layer is shared: same blob, same chain ID, stored once.
    assert_eq!(busybox.layers[0], multi.layers[0]);
    let after = store.stats();
    assert_eq!(
        after.layers_unpacked - before.layers_unpacked,
        2,
        "base not unpacked again"
    );
    assert_eq!(
        after.blobs_fetched - before.blobs_fetched,
        4,
        "manifest, config, 2 new layers"
    );

    // Nothing is unreferenced yet.
    let report = store.gc().expect("gc");
    assert!(report.blobs_removed.is_empty() && report.layers_removed.is_empty());

    store
        .remove_image("berth.test/multi:latest")
        .expect("remove multi");
    assert!(store.image("berth.test/multi").is_err());
    let report = store.gc().expect("gc");
    let expected: BTreeSet<Digest> = blobs_of(&multi)
        .difference(&blobs_of(&busybox))
        .cloned()
        .collect();
    assert_eq!(
        report
            .blobs_removed
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        expected
    );
    let expected_layers: BTreeSet<Digest> = multi.layers[1..]
        .iter()
        .map(|l| l.chain_id.clone())
        .collect();
    assert_eq!(
        report
            .layers_removed
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        expected_layers
    );
    for d in blobs_of(&busybox) {
        assert!(store.blobs().contains(&d), "shared blob {d} kept");
    }
    assert!(
        store
            .layer_dir(&busybox.layers[0].chain_id)
            .join("bin/busybox")
            .is_file()
    );

    store
        .remove_image("berth.test/busybox")
        .expect("remove busybox");
    let report = store.gc().expect("gc");
    assert_eq!(report.blobs_removed.len(), 3);
    assert_eq!(report.layers_removed.len(), 1);
    assert!(store.blobs().list().expect("list").is_empty());
    assert!(store.unpacked_layers().expect("layers").is_empty());
}

#[test]
fn containers_hold_their_layers() {
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let image = store
        .import_oci_layout(
            &fx.oci_layout("busybox-zstd"),
            None,
            "berth.test/busybox",
            None,
        )
        .expect("import");
    store
        .prepare_rootfs("berth.test/busybox", "holder", RootfsMode::Copy)
        .expect("rootfs");
    store.remove_image("berth.test/busybox").expect("remove");
    let report = store.gc().expect("gc");
    assert_eq!(
        report.blobs_removed.len(),
        3,
        "blobs are not held by containers"
    );
    assert!(
        report.layers_removed.is_empty(),
        "layer held by the container"
    );
    assert!(store.layer_dir(&image.layers[0].chain_id).is_dir());
    store.remove_rootfs("holder").expect("remove rootfs");
    let report = store.gc().expect("gc");
    assert_eq!(
        report.layers_removed,
        vec![image.layers[0].chain_id.clone()]
    );
}

#[test]
fn retagging_releases_the_old_image() {
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let old = store
        .import_oci_layout(&fx.oci_layout("busybox-gzip"), None, "berth.test/app", None)
        .expect("v1");
    let new = store
        .import_oci_layout(&fx.oci_layout("busybox-zstd"), None, "berth.test/app", None)
        .expect("v2");
    assert_ne!(old.manifest_digest, new.manifest_digest);
    assert_eq!(
        old.layers[0].chain_id, new.layers[0].chain_id,
        "same diff ID, same chain"
    );
    let report = store.gc().expect("gc");
    let expected: BTreeSet<Digest> = blobs_of(&old)
        .difference(&blobs_of(&new))
        .cloned()
        .collect();
    assert!(expected.contains(&old.layers[0].blob) && expected.contains(&old.manifest_digest));
    assert_eq!(
        report.blobs_removed.into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    assert!(
        report.layers_removed.is_empty(),
        "the unpacked layer is shared"
    );
}

#[test]
fn verify_proves_consistency_and_finds_corruption() {
    let fx = fixtures();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let image = store
        .import_oci_layout(
            &fx.oci_layout("multi-layer"),
            None,
            "berth.test/multi",
            None,
        )
        .expect("import");
    let report = store.verify().expect("verify");
    assert!(report.is_consistent(), "{report:?}");
    assert_eq!(report.blobs_checked, 5);
    assert!(report.unreferenced_blobs.is_empty() && report.unreferenced_layers.is_empty());

    // Flip bytes in a layer blob, delete another layer's directory.
    let blob = store.blobs().path(&image.layers[1].blob);
    let mut data = std::fs::read(&blob).expect("read");
    data[10] ^= 0xff;
    std::fs::write(&blob, data).expect("corrupt");
    let gone = &image.layers[2].chain_id;
    std::fs::remove_dir_all(store.layer_dir(gone).parent().expect("parent")).expect("rm layer");
    let report = store.verify().expect("verify");
    assert!(!report.is_consistent());
    assert_eq!(report.corrupt_blobs, vec![image.layers[1].blob.clone()]);
    assert_eq!(
        report.missing_layers,
        vec![(image.name.clone(), gone.clone())]
    );

    store.remove_image(&image.name).expect("remove");
    let report = store.verify().expect("verify");
    assert_eq!(report.unreferenced_blobs.len(), 5);
    assert_eq!(report.unreferenced_layers.len(), 2);
}
