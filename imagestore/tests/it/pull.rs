//! Pulling from a real registry (Debian's docker-registry, distribution v2)
//! on 127.0.0.1, seeded with the fixture layouts by skopeo.

use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use std::sync::{Arc, Mutex};

use berth_imagestore::{
    Credentials, LayerProgress, LayerState, ProgressSink, PullOptions, StoreError,
};
use berth_rootfs_fixtures::PLATFORM_FILE;

use crate::common::{Registry, fixtures, open_store, open_store_with, snapshot};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn anonymous_pull_by_tag_and_by_digest() {
    let fx = fixtures();
    let registry = Registry::start(None);
    registry.push_layout(&fx.oci_layout("busybox-gzip"), "berth/busybox:latest");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let rt = runtime();

    let reference = format!("{}/berth/busybox:latest", registry.addr);
    let start = Instant::now();
    let report = rt
        .block_on(store.pull(&reference, &PullOptions::default()))
        .expect("pull");
    eprintln!(
        "TIMING: pull of fixture busybox ({} bytes) from local registry: {:?}",
        report.bytes_fetched,
        start.elapsed()
    );
    assert_eq!(report.image.name, reference);
    assert_eq!(report.blobs_fetched, 2, "config + layer");
    assert_eq!(report.layers_unpacked, 1);
    let manifest = fx.manifest().expect("fixtures.json");
    let tag = &manifest.oci_layouts["busybox-gzip"].tags["latest"];
    assert_eq!(
        report.image.manifest_digest.to_string(),
        tag.digest,
        "digest preserved"
    );
    assert_eq!(report.image.platform, "linux/amd64");

    // The pulled layer is the busybox tree.
    let layer = store.layer_dir(&report.image.layers[0].chain_id);
    let got = snapshot(&layer);
    let want = snapshot(&fx.rootfs());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert!(store.image(&reference).is_ok());

    // Pull by digest: same content, nothing fetched again.
    let by_digest = format!("{}/berth/busybox@{}", registry.addr, tag.digest);
    let report2 = rt
        .block_on(store.pull(&by_digest, &PullOptions::default()))
        .expect("pull by digest");
    assert_eq!(report2.image.name, by_digest);
    assert_eq!(report2.image.manifest_digest, report.image.manifest_digest);
    assert_eq!((report2.blobs_fetched, report2.layers_unpacked), (0, 0));

    // Pull by a digest the registry does not have.
    let missing = format!("{}/berth/busybox@sha256:{}", registry.addr, "0".repeat(64));
    let err = rt
        .block_on(store.pull(&missing, &PullOptions::default()))
        .expect_err("unknown digest");
    assert!(matches!(err, StoreError::Registry { .. }), "{err}");
}

#[test]
fn basic_auth_good_and_wrong_credentials() {
    let fx = fixtures();
    let registry = Registry::start(Some(("berth", "s3cret")));
    registry.push_layout(&fx.oci_layout("busybox-zstd"), "private/busybox:1");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let rt = runtime();
    let reference = format!("{}/private/busybox:1", registry.addr);

    let creds = |u: &str, p: &str| PullOptions {
        credentials: Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        }),
        ..Default::default()
    };
    for (what, opts) in [
        ("anonymous", PullOptions::default()),
        ("wrong password", creds("berth", "nope")),
    ] {
        let err = rt.block_on(store.pull(&reference, &opts)).expect_err(what);
        assert!(
            matches!(&err, StoreError::Unauthorized { registry: r, .. } if *r == registry.addr),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("authentication failed"), "{err}");
    }
    assert!(store.images().expect("images").is_empty());
    assert!(store.blobs().list().expect("list").is_empty());

    let report = rt
        .block_on(store.pull(&reference, &creds("berth", "s3cret")))
        .expect("pull with credentials");
    assert_eq!(report.layers_unpacked, 1);
    let layer = store.layer_dir(&report.image.layers[0].chain_id);
    assert!(layer.join("bin/busybox").is_file());
}

#[test]
fn index_resolves_host_and_explicit_platform() {
    let fx = fixtures();
    let registry = Registry::start(None);
    registry.push_layout(&fx.oci_layout("index-two-platforms"), "multi/arch:latest");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let rt = runtime();
    let reference = format!("{}/multi/arch", registry.addr);

    let host = rt
        .block_on(store.pull(&reference, &PullOptions::default()))
        .expect("host pull");
    let top = store.layer_dir(&host.image.layers.last().expect("layer").chain_id);
    assert_eq!(
        std::fs::read_to_string(top.join(PLATFORM_FILE)).expect("platform"),
        "amd64\n"
    );
    assert!(host.image.index_digest.is_some());

    let arm = rt
        .block_on(store.pull(
            &reference,
            &PullOptions {
                platform: Some("linux/arm64".parse().expect("platform")),
                ..Default::default()
            },
        ))
        .expect("arm64 pull");
    assert_eq!(arm.image.platform, "linux/arm64");
    let top = store.layer_dir(&arm.image.layers.last().expect("layer").chain_id);
    assert_eq!(
        std::fs::read_to_string(top.join(PLATFORM_FILE)).expect("platform"),
        "arm64\n"
    );

    let err = rt
        .block_on(store.pull(
            &reference,
            &PullOptions {
                platform: Some("linux/riscv64".parse().expect("platform")),
                ..Default::default()
            },
        ))
        .expect_err("no riscv64");
    assert!(
        matches!(err, StoreError::NoMatchingPlatform { .. }),
        "{err}"
    );
}

#[test]
fn shared_base_layer_is_fetched_and_unpacked_once() {
    let fx = fixtures();
    let registry = Registry::start(None);
    registry.push_layout(&fx.oci_layout("busybox-gzip"), "base/busybox:latest");
    registry.push_layout(&fx.oci_layout("multi-layer"), "app/multi:latest");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let rt = runtime();

    let first = rt
        .block_on(store.pull(
            &format!("{}/base/busybox", registry.addr),
            &PullOptions::default(),
        ))
        .expect("busybox");
    let base = store.layer_dir(&first.image.layers[0].chain_id);
    let inode = std::fs::metadata(&base).expect("base").ino();

    let events: Arc<Mutex<Vec<LayerProgress>>> = Arc::default();
    let sink = events.clone();
    let opts = PullOptions {
        progress: Some(ProgressSink::new(move |p| {
            sink.lock().expect("lock").push(p.clone())
        })),
        ..Default::default()
    };
    let second = rt
        .block_on(store.pull(&format!("{}/app/multi", registry.addr), &opts))
        .expect("multi");
    let events = events.lock().expect("lock").clone();
    for (i, layer) in second.image.layers.iter().enumerate() {
        let states: Vec<LayerState> = events
            .iter()
            .filter(|e| e.digest == layer.blob)
            .map(|e| e.state)
            .collect();
        assert_eq!(
            states.first(),
            Some(&LayerState::Waiting),
            "layer {i}: {states:?}"
        );
        assert_eq!(
            states.last(),
            Some(&LayerState::Done),
            "layer {i}: {states:?}"
        );
        if i == 0 {
            assert!(states.contains(&LayerState::AlreadyPresent), "{states:?}");
            assert!(!states.contains(&LayerState::Downloading), "{states:?}");
        } else {
            assert!(states.contains(&LayerState::Verified), "{states:?}");
            let last_download = events
                .iter()
                .rfind(|e| e.digest == layer.blob && e.state == LayerState::Downloading)
                .expect("download events");
            assert_eq!(last_download.done, layer.size);
        }
    }
    assert_eq!(second.image.layers[0], first.image.layers[0]);
    assert_eq!(
        second.blobs_fetched, 3,
        "config + the two new layers, not the base"
    );
    let new_bytes: u64 = second.image.layers[1..].iter().map(|l| l.size).sum();
    assert!(
        second.bytes_fetched < new_bytes + 4096,
        "base layer bytes not refetched"
    );
    assert_eq!(second.layers_unpacked, 2);
    assert_eq!(
        std::fs::metadata(&base).expect("base").ino(),
        inode,
        "base layer dir untouched"
    );
}

#[test]
fn concurrent_pulls_share_layer_fetches() {
    let fx = fixtures();
    let registry = Registry::start(None);
    registry.push_layout(&fx.oci_layout("busybox-gzip"), "base/busybox:latest");
    registry.push_layout(&fx.oci_layout("multi-layer"), "app/multi:latest");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let rt = runtime();
    let a = format!("{}/base/busybox", registry.addr);
    let b = format!("{}/app/multi", registry.addr);
    let opts = PullOptions::default();
    let (ra, rb) =
        rt.block_on(async { tokio::join!(store.pull(&a, &opts), store.pull(&b, &opts)) });
    let (ra, rb) = (ra.expect("pull a"), rb.expect("pull b"));
    assert_eq!(ra.image.layers[0].blob, rb.image.layers[0].blob);
    // Unique blobs: one config each (identical configs would count once),
    // the shared base, two multi-layer layers.
    let mut unique: Vec<_> = ra.image.blobs();
    unique.extend(rb.image.blobs());
    unique.retain(|d| *d != ra.image.manifest_digest && *d != rb.image.manifest_digest);
    unique.sort();
    unique.dedup();
    let stats = store.stats();
    assert_eq!(
        stats.blobs_fetched,
        unique.len() as u64,
        "each shared blob fetched once"
    );
    assert_eq!(stats.layers_unpacked, 3, "base unpacked once");
    assert_eq!(ra.blobs_fetched + rb.blobs_fetched, unique.len() as u64);
}

#[test]
fn credentials_come_from_the_auth_file() {
    let fx = fixtures();
    let registry = Registry::start(Some(("filed", "pw:with:colons")));
    registry.push_layout(&fx.oci_layout("busybox-gzip"), "private/busybox:latest");
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = dir.path().join("auth.json");
    // base64("filed:pw:with:colons"), as `podman login` writes it.
    let encoded = "ZmlsZWQ6cHc6d2l0aDpjb2xvbnM=";
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{encoded}"}}}}}}"#,
            registry.addr
        ),
    )
    .expect("write auth file");
    let store = open_store_with(dir.path(), |o| o.auth_file = Some(auth.clone()));
    let report = runtime()
        .block_on(store.pull(
            &format!("{}/private/busybox", registry.addr),
            &PullOptions::default(),
        ))
        .expect("pull with auth-file credentials");
    assert_eq!(report.layers_unpacked, 1);
}

#[test]
fn short_name_resolves_through_registries_conf_mirrors() {
    let fx = fixtures();
    let registry = Registry::start(None);
    registry.push_layout(&fx.oci_layout("busybox-gzip"), "library/busybox:latest");
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("registries.conf");
    // docker.io is redirected to the local registry, behind a mirror that
    // refuses connections (port 1): the pull falls back in order and never
    // leaves 127.0.0.1.
    std::fs::write(
        &conf,
        format!(
            "unqualified-search-registries = [\"docker.io\"]\n\
             [[registry]]\nprefix = \"docker.io\"\nlocation = \"{}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"127.0.0.1:1\"\ninsecure = true\n",
            registry.addr
        ),
    )
    .expect("write registries.conf");
    let store = open_store_with(dir.path(), |o| o.registries_conf = Some(conf.clone()));
    let report = runtime()
        .block_on(store.pull("busybox", &PullOptions::default()))
        .expect("short-name pull through registries.conf");
    assert_eq!(report.image.name, "docker.io/library/busybox:latest");
    assert!(store.image("busybox").is_ok(), "found by its short name");
    assert!(store.image("docker.io/library/busybox:latest").is_ok());
}

#[test]
fn gc_running_during_pulls_keeps_what_they_need() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let fx = fixtures();
    let registry = Registry::start(None);
    registry.push_layout(&fx.oci_layout("busybox-zstd"), "base/busybox:latest");
    registry.push_layout(&fx.oci_layout("multi-layer"), "app/multi:latest");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0u32;
            while !stop.load(Ordering::SeqCst) {
                store.gc().expect("gc");
                runs += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            runs
        })
    };
    let rt = runtime();
    let a = format!("{}/base/busybox", registry.addr);
    let b = format!("{}/app/multi", registry.addr);
    let opts = PullOptions::default();
    let (ra, rb) =
        rt.block_on(async { tokio::join!(store.pull(&a, &opts), store.pull(&b, &opts)) });
    stop.store(true, Ordering::SeqCst);
    let runs = collector.join().expect("collector");
    assert!(runs > 0);
    let (ra, rb) = (ra.expect("pull a"), rb.expect("pull b"));
    let report = store.verify().expect("verify");
    assert!(report.is_consistent(), "{report:?}");
    assert!(report.unreferenced_blobs.is_empty() && report.unreferenced_layers.is_empty());
    for image in [&ra.image, &rb.image] {
        for layer in &image.layers {
            assert!(store.layer_dir(&layer.chain_id).is_dir());
        }
    }
    let last = store.gc().expect("gc");
    assert!(last.blobs_removed.is_empty() && last.layers_removed.is_empty());
}
