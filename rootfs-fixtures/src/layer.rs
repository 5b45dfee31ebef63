//! An in-memory filesystem tree: the single description from which both the
//! on-disk rootfs and the image layer tars are produced, so they cannot drift
//! apart. Entries are kept sorted by path, which makes every encoding of a
//! tree deterministic.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use crate::error::{FixtureError, Result};

/// The file name prefix that marks a whiteout in an OCI layer.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The file name that marks a directory as opaque in an OCI layer.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A symbolic link pointing at this target.
    Symlink(String),
}

/// One node of a [`Layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path without leading `/`, `./` or trailing `/`.
    pub path: String,
    /// Permission bits (including sticky/setuid bits), e.g. `0o1777`.
    pub mode: u32,
    /// The entry's type and payload.
    pub kind: EntryKind,
}

/// A filesystem tree, or the changes one image layer makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    entries: BTreeMap<String, Entry>,
}

impl Layer {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (and any missing parents).
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self> {
        self.insert(path, mode, EntryKind::Dir)
    }

    /// Adds a regular file (and any missing parent directories).
    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Result<&mut Self> {
        self.insert(path, mode, EntryKind::File(data.into()))
    }

    /// Adds a symbolic link (and any missing parent directories).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        self.insert(path, 0o777, EntryKind::Symlink(target.to_owned()))
    }

    /// Adds a whiteout that deletes `path` from the layers below.
    pub fn whiteout(&mut self, path: &str) -> Result<&mut Self> {
        let (parent, name) = split_parent(path);
        let marker = join(parent, &format!("{WHITEOUT_PREFIX}{name}"));
        self.file(&marker, 0o644, Vec::new())
    }

    /// Marks directory `path` opaque: everything the layers below put in it
    /// is hidden; only this layer's entries under `path` remain.
    pub fn opaque(&mut self, path: &str) -> Result<&mut Self> {
        self.dir(path, 0o755)?;
        self.file(&join(path, OPAQUE_WHITEOUT), 0o644, Vec::new())
    }

    /// The entries, sorted by path (parents before their children).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Looks up one entry.
    #[cfg(test)]
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    fn insert(&mut self, path: &str, mode: u32, kind: EntryKind) -> Result<&mut Self> {
        validate(path)?;
        let (parent, _) = split_parent(path);
        if !parent.is_empty() && !self.entries.contains_key(parent) {
            self.insert(parent, 0o755, EntryKind::Dir)?;
        }
        if let Some(existing) = self.entries.get(parent) {
            if existing.kind != EntryKind::Dir {
                return Err(FixtureError::InvalidEntry {
                    path: PathBuf::from(path),
                    reason: "parent is not a directory",
                });
            }
        }
        let entry = Entry {
            path: path.to_owned(),
            mode,
            kind,
        };
        self.entries.insert(path.to_owned(), entry);
        Ok(self)
    }

    /// Writes the tree below `root` (which must not exist yet or be empty),
    /// applying modes and setting every mtime to the epoch.
    pub fn materialize(&self, root: &Path) -> Result<()> {
        fs::create_dir_all(root).map_err(|e| FixtureError::io("create directory", root, e))?;
        for entry in self.entries() {
            let path = root.join(&entry.path);
            match &entry.kind {
                EntryKind::Dir => fs::create_dir(&path)
                    .map_err(|e| FixtureError::io("create directory", &path, e))?,
                EntryKind::File(data) => {
                    fs::write(&path, data).map_err(|e| FixtureError::io("write", &path, e))?
                }
                EntryKind::Symlink(target) => {
                    symlink(target, &path).map_err(|e| FixtureError::io("symlink", &path, e))?
                }
            }
        }
        // Children before parents: a read-only directory is only made so
        // after its contents exist, and creating an entry cannot bump the
        // mtime of a directory that was already reset.
        for entry in self.entries().collect::<Vec<_>>().into_iter().rev() {
            let path = root.join(&entry.path);
            if !is_symlink(entry) {
                fs::set_permissions(&path, fs::Permissions::from_mode(entry.mode))
                    .map_err(|e| FixtureError::io("chmod", &path, e))?;
            }
            reset_mtime(&path)?;
        }
        reset_mtime(root)
    }
}

fn is_symlink(entry: &Entry) -> bool {
    matches!(entry.kind, EntryKind::Symlink(_))
}

/// Sets atime and mtime of `path` (not following symlinks) to the epoch.
pub fn reset_mtime(path: &Path) -> Result<()> {
    let zero = TimeSpec::new(0, 0);
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &zero,
        &zero,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|errno| FixtureError::io("reset mtime of", path, errno.into()))
}

/// Rejects paths that are empty, absolute, or escape the tree.
fn validate(path: &str) -> Result<()> {
    let invalid = |reason| {
        Err(FixtureError::InvalidEntry {
            path: PathBuf::from(path),
            reason,
        })
    };
    if path.is_empty() {
        return invalid("empty path");
    }
    if path.ends_with('/') {
        return invalid("trailing slash");
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) => {}
            Component::RootDir => return invalid("absolute path"),
            Component::ParentDir => return invalid("`..` component"),
            Component::CurDir | Component::Prefix(_) => return invalid("`.` component"),
        }
    }
    if path.contains("//") {
        return invalid("empty component");
    }
    Ok(())
}

fn split_parent(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_sorted_before_children() {
        let mut layer = Layer::new();
        layer.file("usr/share/x.txt", 0o644, "x").expect("file");
        layer.file("etc/passwd", 0o644, "").expect("file");
        let paths: Vec<_> = layer.entries().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["etc", "etc/passwd", "usr", "usr/share", "usr/share/x.txt"]
        );
    }

    #[test]
    fn whiteouts_use_the_oci_names() {
        let mut layer = Layer::new();
        layer.whiteout("a/b.txt").expect("whiteout");
        layer.opaque("c").expect("opaque");
        assert!(layer.get("a/.wh.b.txt").is_some());
        assert!(layer.get("c/.wh..wh..opq").is_some());
    }

    #[test]
    fn escaping_paths_are_rejected() {
        let mut layer = Layer::new();
        for bad in ["/etc", "../x", "a/../b", "", "a/", "a//b", "./a"] {
            let err = layer.file(bad, 0o644, "").expect_err(bad);
            assert!(
                matches!(err, FixtureError::InvalidEntry { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn materialize_applies_modes_links_and_epoch_mtimes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let mut layer = Layer::new();
        layer.dir("tmp", 0o1777).expect("dir");
        layer.file("bin/tool", 0o755, "#!/bin/sh\n").expect("file");
        layer.symlink("bin/alias", "tool").expect("symlink");
        layer.materialize(&root).expect("materialize");

        let tmp = fs::metadata(root.join("tmp")).expect("stat tmp");
        assert_eq!(tmp.mode() & 0o7777, 0o1777);
        assert_eq!(
            fs::read_link(root.join("bin/alias")).expect("readlink"),
            Path::new("tool")
        );
        for path in ["", "tmp", "bin", "bin/tool", "bin/alias"] {
            let meta = fs::symlink_metadata(root.join(path)).expect("stat");
            assert_eq!(meta.mtime(), 0, "{path}");
        }
    }
}
