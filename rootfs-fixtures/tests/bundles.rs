//! Runtime bundles: the prebuilt ones, fresh ones from `make_bundle` and the
//! CLI, and the default spec compared with what `runc spec` generates.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_rootfs_fixtures::{BUNDLE_ARGS, default_spec, write_spec};
use common::{fixtures, json, run, s};
use oci_spec::runtime::Spec;

#[test]
fn prebuilt_bundles_have_runc_like_specs_and_a_rootfs() {
    let fixtures = fixtures();
    for &(name, args) in BUNDLE_ARGS {
        let bundle = fixtures.bundle(name);
        let spec = Spec::load(bundle.join("config.json")).expect("config.json");
        assert_eq!(spec, default_spec(args), "{name}");
        assert_eq!(
            spec.root().as_ref().map(|r| r.path().as_path()),
            Some(Path::new("rootfs"))
        );
        assert!(bundle.join("rootfs/bin/busybox").is_file(), "{name}");
        let program = args[0].trim_start_matches('/');
        assert!(
            fs::symlink_metadata(bundle.join("rootfs").join(program)).is_ok(),
            "{name}: {program}"
        );
    }
    let sh: Vec<_> = BUNDLE_ARGS.iter().map(|(n, _)| *n).collect();
    assert_eq!(sh, ["true", "sh", "sleep"]);
}

#[test]
fn make_bundle_gives_a_private_writable_copy() {
    let fixtures = fixtures();
    let dest = tempfile::tempdir().expect("tempdir");
    let bundle = dest.path().join("b");
    let made = fixtures
        .make_bundle(&bundle, &["/bin/echo", "hi"])
        .expect("make_bundle");
    assert_eq!(made, bundle);

    let spec = Spec::load(bundle.join("config.json")).expect("load");
    let args = spec.process().as_ref().and_then(|p| p.args().clone());
    assert_eq!(args, Some(vec!["/bin/echo".to_owned(), "hi".to_owned()]));

    let rootfs = bundle.join("rootfs");
    let shared = fixtures.rootfs().join("bin/busybox");
    let private = rootfs.join("bin/busybox");
    assert_eq!(
        fs::read(&private).expect("read"),
        fs::read(&shared).expect("read")
    );
    assert_ne!(
        fs::metadata(&private).expect("stat").ino(),
        fs::metadata(&shared).expect("stat").ino()
    );
    assert_eq!(
        fs::read_link(rootfs.join("usr/bin/awk")).expect("link"),
        Path::new("../../bin/busybox")
    );
    let tmp = fs::metadata(rootfs.join("tmp")).expect("stat tmp");
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(tmp.mtime(), 0);

    // Writing to the copy leaves the cache alone.
    fs::write(rootfs.join("etc/hostname"), "changed\n").expect("write");
    assert!(!fixtures.rootfs().join("etc/hostname").exists());

    // Tests tweak the spec and write it back.
    let mut spec = default_spec(&["/bin/true"]);
    spec.set_hostname(Some("tweaked".to_owned()));
    write_spec(&bundle, &spec).expect("write_spec");
    assert_eq!(Spec::load(bundle.join("config.json")).expect("load"), spec);

    // A second bundle at the same place is refused rather than merged.
    assert!(fixtures.make_bundle(&bundle, &["/bin/true"]).is_err());
}

/// `runc spec`'s output with berth's documented differences applied must
/// equal `default_spec`.
#[test]
fn default_spec_is_runc_spec_with_documented_differences() {
    let dir = tempfile::tempdir().expect("tempdir");
    run("runc", &["spec", "--bundle", s(dir.path())]);
    let mut runc = json(&fs::read(dir.path().join("config.json")).expect("runc config.json"));

    // Differences: process and terminal chosen by the fixture, hostname
    // "berth", no ambient capabilities, and always a cgroup namespace (runc
    // adds it only on cgroup-v2 hosts).
    runc["process"]["args"] = serde_json::json!(["/bin/true"]);
    runc["process"]["terminal"] = serde_json::json!(false);
    runc["hostname"] = serde_json::json!("berth");
    runc["process"]["capabilities"]
        .as_object_mut()
        .expect("capabilities")
        .remove("ambient");
    let namespaces = runc["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces");
    if !namespaces.iter().any(|ns| ns["type"] == "cgroup") {
        namespaces.push(serde_json::json!({"type": "cgroup"}));
    }

    let ours_dir = tempfile::tempdir().expect("tempdir");
    let ours = write_spec(ours_dir.path(), &default_spec(&["/bin/true"])).expect("write_spec");
    let ours = json(&fs::read(ours).expect("read config.json"));
    assert_eq!(
        serde_json::to_string_pretty(&ours).expect("json"),
        serde_json::to_string_pretty(&runc).expect("json")
    );
}

#[test]
fn cli_prints_the_directory_and_json_and_makes_bundles() {
    let fixtures = fixtures();
    let root = fixtures.dir().parent().expect("cache root");
    let bin = env!("CARGO_BIN_EXE_berth-fixtures");

    let dir = run(bin, &["--cache-dir", s(root)]).stdout;
    assert_eq!(
        String::from_utf8(dir).expect("utf-8").trim_end(),
        s(fixtures.dir())
    );

    let printed = run(bin, &["--cache-dir", s(root), "--json"]).stdout;
    let parsed: berth_rootfs_fixtures::FixturesManifest =
        serde_json::from_slice(&printed).expect("fixtures.json");
    assert_eq!(parsed, fixtures.manifest().expect("manifest"));

    let dest = tempfile::tempdir().expect("tempdir");
    let bundle = dest.path().join("cli");
    run(
        bin,
        &[
            "--cache-dir",
            s(root),
            "bundle",
            s(&bundle),
            "--",
            "/bin/sh",
            "-c",
            "exit 3",
        ],
    );
    let spec = Spec::load(bundle.join("config.json")).expect("load");
    assert_eq!(spec, default_spec(&["/bin/sh", "-c", "exit 3"]));
    assert!(bundle.join("rootfs/bin/sh").exists());

    let bad = std::process::Command::new(bin)
        .arg("--bogus")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("usage"));
}
