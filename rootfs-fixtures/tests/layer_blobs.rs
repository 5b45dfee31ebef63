//! The layer blobs of the shared fixtures, checked with GNU tar, the zstd
//! CLI and independent decoders: archive termination, entry normalisation,
//! whiteout names, and diff IDs.

mod common;

use std::io::Read;
use std::path::Path;

use berth_rootfs_fixtures::{LayerInfo, multi_layer};
use common::{blob, blob_path, fixtures, run, run_stdout, s};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The uncompressed tar of a layer blob, decoded in-process.
fn decompress(layer: &LayerInfo, bytes: &[u8]) -> Vec<u8> {
    match layer.media_type.as_str() {
        "application/vnd.oci.image.layer.v1.tar" => bytes.to_vec(),
        "application/vnd.oci.image.layer.v1.tar+gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("gunzip");
            out
        }
        "application/vnd.oci.image.layer.v1.tar+zstd" => zstd::decode_all(bytes).expect("unzstd"),
        other => panic!("unexpected layer media type {other}"),
    }
}

/// `tar -tvf` of a layer blob (GNU tar detects the compression itself).
fn gnu_tar_listing(path: &Path) -> String {
    run_stdout("tar", &["--numeric-owner", "-tvf", s(path)])
}

#[test]
fn every_layer_is_terminated_and_its_diff_id_matches() {
    let fixtures = fixtures();
    let manifest = fixtures.manifest().expect("manifest");
    let mut checked = 0;
    for (name, layout) in &manifest.oci_layouts {
        let dir = fixtures.oci_layout(name);
        for image in layout.tags.values().flat_map(|t| &t.images) {
            let config = common::json(&blob(&dir, &image.config_digest));
            let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
                .as_array()
                .expect("diff_ids")
                .iter()
                .map(|d| d.as_str().expect("string"))
                .collect();
            assert_eq!(diff_ids.len(), image.layers.len(), "{name}");
            for (layer, diff_id) in image.layers.iter().zip(diff_ids) {
                let tar = decompress(layer, &blob(&dir, &layer.digest));
                assert_eq!(sha256(&tar), diff_id, "{name}: diff_id");
                assert_eq!(layer.diff_id, diff_id, "{name}: fixtures.json diff_id");
                assert_eq!(tar.len() % 512, 0, "{name}: not a whole number of blocks");
                assert!(
                    tar[tar.len() - 1024..].iter().all(|&b| b == 0),
                    "{name}: missing end-of-archive blocks"
                );
                // Every header is ustar, mtime 0, owner 0:0 by number only.
                let mut archive = tar::Archive::new(&tar[..]);
                for entry in archive.entries().expect("entries") {
                    let entry = entry.expect("entry");
                    let header = entry.header();
                    assert!(header.as_ustar().is_some(), "{name}: not ustar");
                    assert_eq!(header.mtime().expect("mtime"), 0);
                    assert_eq!(
                        (header.uid().expect("uid"), header.gid().expect("gid")),
                        (0, 0)
                    );
                    assert_eq!(header.username_bytes(), Some(&b""[..]));
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "only {checked} layers checked");
}

#[test]
fn gnu_tar_lists_the_busybox_rootfs_in_every_compression() {
    let fixtures = fixtures();
    let manifest = fixtures.manifest().expect("manifest");
    let mut listings = Vec::new();
    for name in ["busybox-gzip", "busybox-zstd", "busybox-uncompressed"] {
        let dir = fixtures.oci_layout(name);
        let image = &manifest.oci_layouts[name].tags["latest"].images[0];
        assert_eq!(image.layers.len(), 1, "{name}");
        let path = blob_path(&dir, &image.layers[0].digest);
        let listing = gnu_tar_listing(&path);
        for expected in [
            "-rwxr-xr-x 0/0 ", // bin/busybox
            " bin/busybox\n",
            " bin/sh -> busybox\n",
            " usr/bin/awk -> ../../bin/busybox\n",
            " sbin/ifconfig -> ../bin/busybox\n",
            " etc/passwd\n",
            " etc/group\n",
        ] {
            assert!(
                listing.contains(expected),
                "{name}: {expected:?} not in\n{listing}"
            );
        }
        let tmp = listing
            .lines()
            .find(|l| l.ends_with(" tmp/"))
            .expect("tmp/ entry");
        assert!(tmp.starts_with("drwxrwxrwt 0/0 "), "{tmp}");
        assert!(
            listing.lines().all(|l| l.contains(" 1970-01-01 00:00 ")),
            "{name}: mtimes"
        );
        let names: Vec<&str> = listing
            .lines()
            .map(|l| l.split(" 00:00 ").nth(1).expect("name"))
            .collect();
        let mut sorted = names.clone();
        sorted.sort_by_key(|n| n.split(" -> ").next().unwrap_or(n).trim_end_matches('/'));
        assert_eq!(names, sorted, "{name}: entries not sorted");
        listings.push(listing);
    }
    assert!(
        listings.windows(2).all(|w| w[0] == w[1]),
        "same tar in every compression"
    );
}

#[test]
fn zstd_cli_decodes_the_zstd_layer() {
    let fixtures = fixtures();
    let manifest = fixtures.manifest().expect("manifest");
    let dir = fixtures.oci_layout("busybox-zstd");
    let layer = &manifest.oci_layouts["busybox-zstd"].tags["latest"].images[0].layers[0];
    assert_eq!(
        layer.media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let out = run("zstd", &["-dc", s(&blob_path(&dir, &layer.digest))]);
    assert_eq!(sha256(&out.stdout), layer.diff_id);
}

#[test]
fn multi_layer_whiteouts_are_in_the_top_layer() {
    let fixtures = fixtures();
    let manifest = fixtures.manifest().expect("manifest");
    let dir = fixtures.oci_layout("multi-layer");
    let image = &manifest.oci_layouts["multi-layer"].tags["latest"].images[0];
    assert!(image.layers.len() >= 3);
    let listing = |i: usize| gnu_tar_listing(&blob_path(&dir, &image.layers[i].digest));

    let additions = listing(1);
    assert!(
        additions.contains(&format!(" {}\n", multi_layer::RELEASE_FILE)),
        "{additions}"
    );
    assert!(
        additions.contains(&format!(" {}\n", multi_layer::WHITED_OUT_FILE)),
        "{additions}"
    );
    for lower in multi_layer::OPAQUE_DIR_LOWER {
        assert!(
            additions.contains(&format!("{}/{lower}", multi_layer::OPAQUE_DIR)),
            "{additions}"
        );
    }

    let top = listing(2);
    let (parent, file) = multi_layer::WHITED_OUT_FILE
        .rsplit_once('/')
        .expect("nested");
    assert!(top.contains(&format!(" {parent}/.wh.{file}\n")), "{top}");
    assert!(
        top.contains(&format!(" {}/.wh..wh..opq\n", multi_layer::OPAQUE_DIR)),
        "{top}"
    );
    for new in multi_layer::OPAQUE_DIR_FINAL {
        assert!(
            top.contains(&format!(" {}/{new}\n", multi_layer::OPAQUE_DIR)),
            "{top}"
        );
    }
    // The opaque marker precedes the directory's new entries.
    let opq = top.find(".wh..wh..opq").expect("opaque marker");
    let new = top
        .find(&format!("{}/new.txt", multi_layer::OPAQUE_DIR))
        .expect("new file");
    assert!(opq < new);
}

#[test]
fn docker_archives_are_well_formed_tars() {
    let fixtures = fixtures();
    for name in ["busybox", "multi-layer"] {
        let path = fixtures.docker_archive(name);
        let bytes = std::fs::read(&path).expect("read archive");
        assert!(
            bytes[bytes.len() - 1024..].iter().all(|&b| b == 0),
            "{name}"
        );
        let listing = gnu_tar_listing(&path);
        assert!(listing.contains(" manifest.json\n"), "{listing}");
        assert!(listing.contains(" repositories\n"), "{listing}");
        assert!(listing.contains("/layer.tar\n"), "{listing}");
        assert!(listing.contains("/VERSION\n"), "{listing}");
        assert!(listing.lines().all(|l| l.contains(" 0/0 ")), "{listing}");
    }
}

#[test]
fn docker_archive_manifest_references_its_contents() {
    let fixtures = fixtures();
    let manifest = fixtures.manifest().expect("manifest");
    for (name, info) in &manifest.docker_archives {
        let bytes = std::fs::read(fixtures.docker_archive(name)).expect("read archive");
        let mut files = std::collections::BTreeMap::new();
        let mut archive = tar::Archive::new(&bytes[..]);
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read entry");
            files.insert(path, data);
        }
        let docker_manifest = common::json(&files["manifest.json"]);
        let entry = &docker_manifest[0];
        assert_eq!(docker_manifest.as_array().map(Vec::len), Some(1), "{name}");
        assert_eq!(
            entry["RepoTags"],
            serde_json::json!(info.repo_tags),
            "{name}"
        );
        let config_file = entry["Config"].as_str().expect("Config");
        assert_eq!(sha256(&files[config_file]), info.config_digest, "{name}");
        let config = common::json(&files[config_file]);
        assert_eq!(config["architecture"], "amd64");
        let layers: Vec<&str> = entry["Layers"]
            .as_array()
            .expect("Layers")
            .iter()
            .map(|l| l.as_str().expect("layer path"))
            .collect();
        let layer_digests: Vec<String> = layers.iter().map(|l| sha256(&files[*l])).collect();
        assert_eq!(layer_digests, info.diff_ids, "{name}: layer.tar digests");
        assert_eq!(
            config["rootfs"]["diff_ids"],
            serde_json::json!(info.diff_ids),
            "{name}"
        );
        for layer in &layers {
            let id = layer.trim_end_matches("/layer.tar");
            assert_eq!(files[&format!("{id}/VERSION")], b"1.0", "{name}");
            assert_eq!(
                common::json(&files[&format!("{id}/json")])["id"],
                *id,
                "{name}"
            );
        }
        let repositories = common::json(&files["repositories"]);
        let (repo, tag) = info.repo_tags[0].rsplit_once(':').expect("repo:tag");
        let top = layers
            .last()
            .expect("a layer")
            .trim_end_matches("/layer.tar");
        assert_eq!(repositories[repo][tag], top, "{name}");
    }
}
