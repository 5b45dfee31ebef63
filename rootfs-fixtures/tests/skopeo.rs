//! Validates the OCI layouts and docker archives with skopeo, an independent
//! implementation (containers/image): manifests parse and hash to the
//! recorded digests, copies succeed, and platform selection picks the right
//! member of the two-platform index.

mod common;

use std::fs;

use common::{fixtures, json, run, run_stdout, s};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn oci_ref(layout: &std::path::Path) -> String {
    format!("oci:{}:latest", s(layout))
}

#[test]
fn skopeo_inspect_raw_matches_recorded_digests() {
    let fixtures = fixtures();
    let manifest = fixtures.manifest().expect("manifest");
    for (name, layout) in &manifest.oci_layouts {
        let raw = run(
            "skopeo",
            &["inspect", "--raw", &oci_ref(&fixtures.oci_layout(name))],
        )
        .stdout;
        let tag = &layout.tags["latest"];
        assert_eq!(sha256(&raw), tag.digest, "{name}");
        let doc = json(&raw);
        assert_eq!(doc["schemaVersion"], 2, "{name}");
        assert_eq!(doc["mediaType"], tag.media_type.as_str(), "{name}");
    }
}

#[test]
fn skopeo_inspect_reports_the_image_config() {
    let fixtures = fixtures();
    let out = run_stdout(
        "skopeo",
        &[
            "inspect",
            "--config",
            &oci_ref(&fixtures.oci_layout("busybox-gzip")),
        ],
    );
    let config = json(out.as_bytes());
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert!(
        config["config"]["Env"][0]
            .as_str()
            .expect("env")
            .starts_with("PATH=")
    );
    assert_eq!(config["history"].as_array().map(Vec::len), Some(1));
}

#[test]
fn skopeo_copies_every_single_platform_layout() {
    let fixtures = fixtures();
    let manifest = fixtures.manifest().expect("manifest");
    for name in [
        "busybox-gzip",
        "busybox-zstd",
        "busybox-uncompressed",
        "multi-layer",
    ] {
        let dest = tempfile::tempdir().expect("tempdir");
        let target = dest.path().join("image");
        run(
            "skopeo",
            &[
                "copy",
                &oci_ref(&fixtures.oci_layout(name)),
                &format!("dir:{}", s(&target)),
            ],
        );
        // skopeo verified every blob against its digest while copying; the
        // copied manifest lists the same layers.
        let copied = json(&fs::read(target.join("manifest.json")).expect("manifest.json"));
        let layers: Vec<&str> = copied["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].as_str().expect("digest"))
            .collect();
        let expected: Vec<&str> = manifest.oci_layouts[name].tags["latest"].images[0]
            .layers
            .iter()
            .map(|l| l.digest.as_str())
            .collect();
        assert_eq!(layers, expected, "{name}");
    }
}

#[test]
fn skopeo_copies_docker_archives_to_oci() {
    let fixtures = fixtures();
    let manifest = fixtures.manifest().expect("manifest");
    for name in ["busybox", "multi-layer"] {
        let dest = tempfile::tempdir().expect("tempdir");
        let layout = dest.path().join("layout");
        let archive = fixtures.docker_archive(name);
        run(
            "skopeo",
            &[
                "copy",
                &format!("docker-archive:{}", s(&archive)),
                &format!("oci:{}:x", s(&layout)),
            ],
        );
        let config = json(
            run_stdout(
                "skopeo",
                &["inspect", "--config", &format!("oci:{}:x", s(&layout))],
            )
            .as_bytes(),
        );
        let diff_ids: Vec<String> =
            serde_json::from_value(config["rootfs"]["diff_ids"].clone()).expect("diff_ids");
        assert_eq!(diff_ids, manifest.docker_archives[name].diff_ids, "{name}");

        // skopeo also reads the archive's RepoTags.
        let inspect = json(
            run_stdout(
                "skopeo",
                &["inspect", &format!("docker-archive:{}", s(&archive))],
            )
            .as_bytes(),
        );
        assert_eq!(inspect["Architecture"], "amd64", "{name}");
        assert_eq!(
            inspect["Layers"].as_array().map(Vec::len),
            Some(diff_ids.len()),
            "{name}"
        );
    }
}

/// Copies the two-platform index for `arch` and returns (config, marker).
fn copy_platform(arch: &str) -> (serde_json::Value, String) {
    let fixtures = fixtures();
    let dest = tempfile::tempdir().expect("tempdir");
    let target = dest.path().join("image");
    run(
        "skopeo",
        &[
            "copy",
            "--override-os",
            "linux",
            "--override-arch",
            arch,
            &oci_ref(&fixtures.oci_layout("index-two-platforms")),
            &format!("dir:{}", s(&target)),
        ],
    );
    let manifest = json(&fs::read(target.join("manifest.json")).expect("manifest.json"));
    let hex = |digest: &serde_json::Value| {
        digest
            .as_str()
            .expect("digest")
            .trim_start_matches("sha256:")
            .to_owned()
    };
    let config = json(&fs::read(target.join(hex(&manifest["config"]["digest"]))).expect("config"));
    let top = manifest["layers"]
        .as_array()
        .and_then(|l| l.last())
        .expect("a layer");
    let listing_dir = tempfile::tempdir().expect("tempdir");
    run(
        "tar",
        &[
            "-xzf",
            s(&target.join(hex(&top["digest"]))),
            "-C",
            s(listing_dir.path()),
            "platform",
        ],
    );
    let marker = fs::read_to_string(listing_dir.path().join("platform")).expect("platform marker");
    (config, marker)
}

#[test]
fn skopeo_selects_arm64_from_the_index() {
    let (config, marker) = copy_platform("arm64");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(marker, "arm64\n");
}

#[test]
fn skopeo_selects_amd64_from_the_index() {
    let (config, marker) = copy_platform("amd64");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(marker, "amd64\n");
}

#[test]
fn index_manifests_carry_platforms() {
    let fixtures = fixtures();
    let layout = fixtures.oci_layout("index-two-platforms");
    let index = json(&run("skopeo", &["inspect", "--raw", &oci_ref(&layout)]).stdout);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<(String, String)> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
            let p = &m["platform"];
            (
                p["os"].as_str().expect("os").to_owned(),
                p["architecture"].as_str().expect("arch").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [
            ("linux".to_owned(), "amd64".to_owned()),
            ("linux".to_owned(), "arm64".to_owned())
        ]
    );
    // index.json tags the nested index.
    let top = json(&fs::read(layout.join("index.json")).expect("index.json"));
    assert_eq!(
        top["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
}
