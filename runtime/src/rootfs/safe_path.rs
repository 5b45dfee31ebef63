//! Resolving and creating paths inside the rootfs without ever leaving it: every lookup
//! is `openat2(root_fd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so absolute and
//! `..` symlinks in the image resolve relative to the rootfs, as they will inside the
//! container. Missing components are created one at a time relative to an already
//! resolved parent fd, and the final object is returned as an `O_PATH` fd, which callers
//! use as `/proc/self/fd/N` (mount targets) or as a dirfd (`mknodat`, `symlinkat`):
//! there is no window in which a swapped-in symlink could redirect them.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::readlinkat;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2};
use nix::sys::stat::{Mode, mkdirat};

use super::{RootfsError, step_err};

/// What to create when the final component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// A directory (mode 0755).
    Dir,
    /// An empty regular file (mode 0644), e.g. a bind-mount target for a file.
    File,
}

/// Opens the rootfs directory itself (`O_PATH`).
pub fn open_root(rootfs: &Path) -> Result<OwnedFd, RootfsError> {
    open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(step_err("open rootfs", rootfs))
}

/// `/proc/self/fd/N` for `fd`: a path that names exactly the object `fd` refers to.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Lexically normalises a container path to a relative one (`/a/./b/../c` → `a/c`),
/// never climbing above the root.
pub fn relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Resolves `path` (a container path) inside `root`; `O_PATH` fd to the result.
pub fn open_in_root(root: &OwnedFd, path: &Path) -> nix::Result<OwnedFd> {
    let rel = relative(path);
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    loop {
        match openat2(root, &rel, how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// Resolves `path` inside `root`, creating missing directories along the way and the
/// final component as `leaf` if it is missing. A dangling symlink on the way is resolved
/// (inside the root) and its target created, as `mkdir -p` through it would.
pub fn create_in_root(root: &OwnedFd, path: &Path, leaf: Leaf) -> nix::Result<OwnedFd> {
    create_bounded(root, path, leaf, 0)
}

fn create_bounded(root: &OwnedFd, path: &Path, leaf: Leaf, depth: u32) -> nix::Result<OwnedFd> {
    if depth > 40 {
        return Err(Errno::ELOOP);
    }
    match open_in_root(root, path) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let rel = relative(path);
    let comps: Vec<_> = rel.components().collect();
    let mut cur = PathBuf::new();
    for (i, comp) in comps.iter().enumerate() {
        let parent = open_in_root(root, &cur)?;
        let parent_path = cur.clone();
        cur.push(comp);
        let last = i + 1 == comps.len();
        let kind = if last { leaf } else { Leaf::Dir };
        match open_in_root(root, &cur) {
            Ok(fd) if last => return Ok(fd),
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let name = comp.as_os_str();
        let created = if kind == Leaf::File {
            openat(
                &parent,
                name,
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_WRONLY
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            mkdirat(&parent, name, Mode::from_bits_truncate(0o755))
        };
        match created {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                // Exists but does not resolve: a dangling symlink. Create its target.
                if let Err(Errno::ENOENT) = open_in_root(root, &cur) {
                    let target = readlinkat(&parent, name)?;
                    let target = Path::new(&target);
                    let resolved = if target.is_absolute() {
                        target.to_owned()
                    } else {
                        Path::new("/").join(&parent_path).join(target)
                    };
                    create_bounded(root, &resolved, kind, depth + 1)?;
                }
            }
            Err(e) => return Err(e),
        }
        if last {
            return open_in_root(root, &cur);
        }
    }
    // Only reached for an empty path: the root itself.
    open_in_root(root, Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_lexically() {
        assert_eq!(relative(Path::new("/a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(relative(Path::new("/../../x")), PathBuf::from("x"));
    }

    #[test]
    fn symlinks_stay_inside_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        // An absolute symlink pointing at the host's /tmp must resolve inside the root.
        std::os::unix::fs::symlink("/outside", root.join("link")).unwrap();
        let root_fd = open_root(&root).unwrap();
        create_in_root(&root_fd, Path::new("/link/sub"), Leaf::Dir).unwrap();
        assert!(root.join("outside/sub").is_dir());
        assert!(!Path::new("/outside").exists());
        create_in_root(&root_fd, Path::new("/etc/file"), Leaf::File).unwrap();
        assert!(root.join("etc/file").is_file());
    }
}
