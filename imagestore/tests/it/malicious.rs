//! A malicious-layer corpus built here, one layer per trick: each is
//! refused or confined to the layer directory, and nothing outside changes.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_imagestore::compression::Compression;
use berth_imagestore::layer_unpack::unpack_layer;
use berth_imagestore::{Digest, StoreError};
use tar::EntryType;

use crate::common::{Node, open_store, snapshot};

/// One raw tar entry; paths are written byte-for-byte (no sanitising).
enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    /// A PAX extended header of this many bytes, then a file.
    HugePax(usize, &'a str),
    /// A character device.
    CharDev(&'a str, u32, u32),
}

fn header(path: &str, kind: EntryType, link: &str, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

fn layer_tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        match e {
            E::File(p, data) => b.append(
                &header(p, EntryType::Regular, "", data.len() as u64, 0o644),
                *data,
            ),
            E::Dir(p) => b.append(&header(p, EntryType::Directory, "", 0, 0o755), &[][..]),
            E::Symlink(p, t) => b.append(&header(p, EntryType::Symlink, t, 0, 0o777), &[][..]),
            E::Hardlink(p, t) => b.append(&header(p, EntryType::Link, t, 0, 0o644), &[][..]),
            E::CharDev(p, major, minor) => {
                let mut h = header(p, EntryType::Char, "", 0, 0o620);
                h.set_device_major(*major).expect("major");
                h.set_device_minor(*minor).expect("minor");
                h.set_cksum();
                b.append(&h, &[][..])
            }
            E::HugePax(n, p) => {
                let record = {
                    let body = "x".repeat(*n);
                    let line = format!(" comment={body}\n");
                    let len = line.len() + 7;
                    format!("{len:07}{line}")
                };
                b.append(
                    &header("pax", EntryType::XHeader, "", record.len() as u64, 0o644),
                    record.as_bytes(),
                )
                .and_then(|()| b.append(&header(p, EntryType::Regular, "", 1, 0o644), &b"x"[..]))
            }
        }
        .expect("append");
    }
    b.into_inner().expect("finish")
}

/// A sandbox: `outside/` holds a secret that must survive; `layer/` is
/// the unpack destination.
struct Sandbox {
    dir: tempfile::TempDir,
    before: BTreeMap<String, Node>,
    passwd: (u64, u64, i64, u64),
}

fn passwd_state() -> (u64, u64, i64, u64) {
    let m = fs::symlink_metadata("/etc/passwd").expect("stat /etc/passwd");
    (m.ino(), m.nlink(), m.mtime(), m.size())
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("outside")).expect("mkdir");
        fs::write(dir.path().join("outside/secret"), "secret").expect("write");
        fs::create_dir(dir.path().join("layer")).expect("mkdir");
        let before = snapshot(&dir.path().join("outside"));
        Sandbox {
            dir,
            before,
            passwd: passwd_state(),
        }
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    fn layer(&self) -> PathBuf {
        self.dir.path().join("layer")
    }

    fn unpack(&self, entries: &[E<'_>]) -> (Digest, Result<(), StoreError>) {
        let tar = layer_tar(entries);
        let digest = Digest::of(&tar);
        let r = unpack_layer(&tar[..], Compression::None, &digest, &self.layer()).map(drop);
        (digest, r)
    }

    fn assert_outside_unchanged(&self) {
        assert_eq!(
            snapshot(&self.outside()),
            self.before,
            "something outside the layer changed"
        );
        assert_eq!(passwd_state(), self.passwd, "/etc/passwd changed");
        let parent: Vec<_> = fs::read_dir(self.dir.path())
            .expect("read")
            .map(|e| e.expect("e").file_name().into_string().expect("utf8"))
            .collect();
        let mut parent = parent;
        parent.sort();
        assert_eq!(
            parent,
            ["layer", "outside"],
            "files appeared next to the layer"
        );
    }
}

/// Strips the leading `/`: where an absolute path lands inside the layer.
fn inside(layer: &Path, abs: &Path) -> PathBuf {
    layer.join(abs.strip_prefix("/").expect("absolute"))
}

#[test]
fn dotdot_entries_are_refused_naming_layer_and_entry() {
    for path in ["../escape", "a/../../escape", "./../../escape"] {
        let sb = Sandbox::new();
        let (digest, r) = sb.unpack(&[E::File(path, b"pwned")]);
        let err = r.expect_err(path);
        assert!(
            matches!(&err, StoreError::UnsafeEntry { digest: d, entry, .. } if *d == digest && entry == path),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&digest.to_string()) && msg.contains(path),
            "{msg}"
        );
        sb.assert_outside_unchanged();
    }
}

#[test]
fn whiteouts_of_dot_and_dotdot_are_refused() {
    crate::common::assert_root("whiteouts");
    for path in [".wh..", ".wh...", "sub/.wh..."] {
        let sb = Sandbox::new();
        fs::write(sb.layer().join("keep"), "k").expect("write");
        let (digest, r) = sb.unpack(&[E::Dir("sub/"), E::File(path, b"")]);
        let err = r.expect_err(path);
        assert!(
            matches!(&err, StoreError::UnsafeEntry { digest: d, entry, .. } if *d == digest && entry == path),
            "{err}"
        );
        assert!(
            sb.layer().join("keep").is_file(),
            "{path}: layer contents deleted"
        );
        sb.assert_outside_unchanged();
    }
}

#[test]
fn absolute_paths_are_confined() {
    let sb = Sandbox::new();
    let target = sb.outside().join("abs-pwned");
    let (_, r) = sb.unpack(&[E::File(target.to_str().expect("utf8"), b"pwned")]);
    r.expect("absolute path is stripped, not refused");
    assert_eq!(
        fs::read(inside(&sb.layer(), &target)).expect("confined file"),
        b"pwned"
    );
    sb.assert_outside_unchanged();
}

#[test]
fn write_through_absolute_symlink_is_confined_or_refused() {
    let sb = Sandbox::new();
    let outside = sb.outside();
    let outside = outside.to_str().expect("utf8");
    let (_, r) = sb.unpack(&[E::Symlink("evil", outside), E::File("evil/pwned", b"pwned")]);
    // `evil` resolves to the layer's own <outside path>, which does not
    // exist in the layer: refused. Either way nothing escapes.
    if r.is_ok() {
        assert!(inside(&sb.layer(), &sb.outside()).join("pwned").is_file());
    }
    sb.assert_outside_unchanged();

    // With the target present in the layer, the write lands there.
    let sb = Sandbox::new();
    let (_, r) = sb.unpack(&[
        E::Dir("etc/"),
        E::Symlink("evil", "/etc"),
        E::File("evil/passwd", b"root::0:0::/:/bin/sh\n"),
    ]);
    r.expect("confined write");
    assert_eq!(
        fs::read(sb.layer().join("etc/passwd")).expect("layer passwd"),
        b"root::0:0::/:/bin/sh\n"
    );
    assert!(
        fs::symlink_metadata(sb.layer().join("evil"))
            .expect("evil")
            .file_type()
            .is_symlink()
    );
    sb.assert_outside_unchanged();
}

#[test]
fn hardlinks_out_of_the_layer_are_refused() {
    let sb = Sandbox::new();
    let secret = sb.outside().join("secret");
    let secret_abs = secret.to_str().expect("utf8").to_owned();
    for target in ["/etc/passwd", "../outside/secret", secret_abs.as_str()] {
        let (digest, r) = sb.unpack(&[E::Hardlink("link", target)]);
        let err = r.expect_err(target);
        assert!(
            matches!(&err, StoreError::UnsafeEntry { digest: d, entry, .. } if *d == digest && entry == "link"),
            "{target}: {err}"
        );
    }
    assert_eq!(fs::metadata(&secret).expect("secret").nlink(), 1);
    // A hardlink through a planted symlink is refused too.
    let outside = sb.outside();
    let (_, r) = sb.unpack(&[
        E::Symlink("s", outside.to_str().expect("utf8")),
        E::Hardlink("h", "s/secret"),
    ]);
    assert!(r.is_err(), "hardlink through symlink");
    assert_eq!(fs::metadata(&secret).expect("secret").nlink(), 1);
    sb.assert_outside_unchanged();

    // Inside the layer, hardlinks are kept as hardlinks.
    let sb = Sandbox::new();
    let (_, r) = sb.unpack(&[E::File("bin/a", b"x"), E::Hardlink("bin/b", "/bin/a")]);
    r.expect("in-layer hardlink");
    let a = fs::metadata(sb.layer().join("bin/a")).expect("a");
    let b = fs::metadata(sb.layer().join("bin/b")).expect("b");
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
}

#[test]
fn symlink_chains_escaping_the_root_are_confined_or_refused() {
    let sb = Sandbox::new();
    let up = "../".repeat(20);
    let rel_outside = sb.outside();
    let rel_outside = rel_outside
        .strip_prefix("/")
        .expect("abs")
        .to_str()
        .expect("utf8")
        .to_owned();
    let escape = format!("{up}{rel_outside}");
    let (_, r) = sb.unpack(&[
        E::Symlink("a", "b"),
        E::Symlink("b", "c/../d"),
        E::Symlink("d", &escape),
        E::File("a/pwned", b"pwned"),
    ]);
    if r.is_ok() {
        assert!(inside(&sb.layer(), &sb.outside()).join("pwned").is_file());
    }
    sb.assert_outside_unchanged();

    // The same chain to a directory that exists inside the layer: confined.
    let sb = Sandbox::new();
    let (_, r) = sb.unpack(&[
        E::Dir("tmp/"),
        E::Symlink("a", "b"),
        E::Symlink("b", &format!("{up}tmp")),
        E::File("a/pwned", b"pwned"),
    ]);
    r.expect("confined");
    assert!(sb.layer().join("tmp/pwned").is_file());
    sb.assert_outside_unchanged();
}

#[test]
fn replacing_a_symlink_never_writes_through_it() {
    let sb = Sandbox::new();
    let secret = sb.outside().join("secret");
    let (_, r) = sb.unpack(&[
        E::Symlink("f", secret.to_str().expect("utf8")),
        E::File("f", b"overwritten"),
    ]);
    r.expect("replace symlink by file");
    assert_eq!(fs::read(sb.layer().join("f")).expect("f"), b"overwritten");
    sb.assert_outside_unchanged();
}

#[test]
fn oversized_headers_are_refused() {
    let sb = Sandbox::new();
    let (digest, r) = sb.unpack(&[E::HugePax(2 << 20, "big")]);
    let err = r.expect_err("huge pax");
    assert!(
        matches!(&err, StoreError::UnsafeEntry { digest: d, reason, .. } if *d == digest && reason.contains("oversized")),
        "{err}"
    );
    let (_, r) = sb.unpack(&[E::File("ok", b"x"), E::HugePax(10, "ok2")]);
    r.expect("small pax is fine");
    sb.assert_outside_unchanged();
}

/// Through the whole import path: the import fails naming the layer, no
/// layer directory (not even a temporary) and no image record remain.
#[test]
fn import_of_malicious_layout_fails_cleanly() {
    let sb = Sandbox::new();
    let tar = layer_tar(&[E::File("ok.txt", b"fine"), E::File("../escape", b"pwned")]);
    let layout_dir = tempfile::tempdir().expect("tempdir");
    let layout = layout_dir.path().join("layout");
    let layer = crate::common::write_layout(&layout, &[tar]).remove(0);
    let store_dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(store_dir.path());
    let err = store
        .import_oci_layout(&layout, None, "berth.test/evil", None)
        .expect_err("malicious import");
    assert!(err.to_string().contains(&layer.to_string()), "{err}");
    assert!(err.to_string().contains("../escape"), "{err}");
    assert!(store.images().expect("images").is_empty());
    let layers: Vec<_> = fs::read_dir(store.root().join("layers"))
        .expect("read")
        .collect();
    assert!(layers.is_empty(), "left a layer directory behind");
    assert!(
        !store
            .root()
            .parent()
            .expect("parent")
            .join("escape")
            .exists()
    );
    sb.assert_outside_unchanged();
}

#[test]
fn device_nodes_are_created_when_root_and_never_outside() {
    use std::os::unix::fs::FileTypeExt;
    crate::common::assert_root("device nodes");
    let sb = Sandbox::new();
    let outside = sb.outside().join("tty-escape");
    let (_, r) = sb.unpack(&[
        E::CharDev("dev/tty5", 4, 5),
        E::Symlink("devlink", sb.outside().to_str().expect("utf8")),
        E::CharDev(outside.to_str().expect("utf8"), 1, 3),
    ]);
    r.expect("device nodes as root");
    let meta = fs::symlink_metadata(sb.layer().join("dev/tty5")).expect("tty5");
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), libc::makedev(4, 5));
    assert_eq!(meta.mode() & 0o7777, 0o620);
    let confined = inside(&sb.layer(), &outside);
    assert!(
        fs::symlink_metadata(&confined)
            .expect("confined")
            .file_type()
            .is_char_device()
    );
    sb.assert_outside_unchanged();
}
