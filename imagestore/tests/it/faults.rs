//! Pulls through the fault-injecting proxy: a dropped connection resumes
//! with an HTTP range request, a 5xx is retried, corrupted bytes fail the
//! pull with the blob's digest and leave the store consistent.

use berth_imagestore::{ImageStore, PullOptions, StoreError};

use crate::common::{Registry, fixtures, open_store};
use crate::fault_proxy::{Fault, FaultProxy};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A registry holding busybox-gzip; returns it and the layer's digest.
fn seeded() -> (Registry, String) {
    let fx = fixtures();
    let registry = Registry::start(None);
    registry.push_layout(&fx.oci_layout("busybox-gzip"), "berth/busybox:latest");
    let manifest = fx.manifest().expect("fixtures.json");
    let layer = manifest.oci_layouts["busybox-gzip"].tags["latest"].images[0].layers[0]
        .digest
        .clone();
    (registry, layer)
}

fn blob_gets(proxy: &FaultProxy, digest: &str) -> Vec<String> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains(&format!("/blobs/{digest}")))
        .collect()
}

fn assert_layer_unpacked(store: &ImageStore, reference: &str) {
    let image = store.image(reference).expect("image recorded");
    assert!(
        store
            .layer_dir(&image.layers[0].chain_id)
            .join("bin/busybox")
            .is_file()
    );
    assert!(store.verify().expect("verify").is_consistent());
}

#[test]
fn dropped_connection_resumes_with_a_range_request() {
    let (registry, layer) = seeded();
    let proxy = FaultProxy::start(
        &registry.addr,
        Fault::TruncateOnce {
            path_contains: format!("/blobs/{layer}"),
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let reference = format!("{}/berth/busybox:latest", proxy.addr);
    runtime()
        .block_on(store.pull(&reference, &PullOptions::default()))
        .expect("pull survives a dropped connection");
    let gets = blob_gets(&proxy, &layer);
    assert_eq!(gets.len(), 2, "{gets:?}");
    let resumed_from: u64 = gets[1]
        .rsplit("bytes=")
        .next()
        .and_then(|r| r.trim_end_matches('-').parse().ok())
        .expect("range of the second request");
    assert!(resumed_from > 0, "resumed, not restarted: {gets:?}");
    assert_layer_unpacked(&store, &reference);
}

#[test]
fn server_errors_are_retried() {
    let (registry, layer) = seeded();
    let proxy = FaultProxy::start(
        &registry.addr,
        Fault::ServerErrorOnce {
            path_contains: format!("/blobs/{layer}"),
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let reference = format!("{}/berth/busybox:latest", proxy.addr);
    runtime()
        .block_on(store.pull(&reference, &PullOptions::default()))
        .expect("pull survives a 503");
    assert_eq!(blob_gets(&proxy, &layer).len(), 2);
    assert_layer_unpacked(&store, &reference);
}

#[test]
fn manifest_server_errors_are_retried() {
    let (registry, _) = seeded();
    let proxy = FaultProxy::start(
        &registry.addr,
        Fault::ServerErrorOnce {
            path_contains: "/manifests/".to_owned(),
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let reference = format!("{}/berth/busybox:latest", proxy.addr);
    runtime()
        .block_on(store.pull(&reference, &PullOptions::default()))
        .expect("pull survives a 503 on the manifest");
    let manifest_gets = proxy
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/manifests/"))
        .count();
    assert_eq!(manifest_gets, 2);
    assert_layer_unpacked(&store, &reference);
}

#[test]
fn corrupted_bytes_fail_the_pull_and_leave_the_store_consistent() {
    let (registry, layer) = seeded();
    let proxy = FaultProxy::start(
        &registry.addr,
        Fault::FlipByte {
            path_contains: format!("/blobs/{layer}"),
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let reference = format!("{}/berth/busybox:latest", proxy.addr);
    let err = runtime()
        .block_on(store.pull(&reference, &PullOptions::default()))
        .expect_err("corrupted layer");
    assert!(
        matches!(&err, StoreError::DigestMismatch { expected, .. } if expected.to_string() == layer),
        "{err}"
    );
    assert!(err.to_string().contains(&layer), "{err}");
    assert!(
        store.images().expect("images").is_empty(),
        "nothing recorded"
    );
    let digest = layer.parse().expect("digest");
    assert!(
        !store.blobs().contains(&digest),
        "corrupt blob never visible"
    );
    assert!(store.blobs().ingest_entries().expect("ingest").is_empty());
    assert!(store.unpacked_layers().expect("layers").is_empty());
    let report = store.verify().expect("verify");
    assert!(report.is_consistent(), "{report:?}");
    // What did land (manifest, config) is unreferenced: GC takes it.
    store.gc().expect("gc");
    assert!(store.blobs().list().expect("list").is_empty());
}
