//! OCI whiteouts ↔ overlayfs whiteouts.
//!
//! In a layer tar, `dir/.wh.name` deletes `dir/name` from the layers below
//! and `dir/.wh..wh..opq` makes `dir` opaque (hides everything the layers
//! below put in it). overlayfs expresses the same with a character device
//! 0:0 named `name` and the `trusted.overlay.opaque=y` xattr on the
//! directory; layers are stored in overlayfs form so they can be stacked as
//! lowerdirs unchanged. Creating either needs root (CAP_MKNOD,
//! CAP_SYS_ADMIN for `trusted.*`).
//!
//! The plain-copy rootfs fallback interprets the overlayfs form back
//! ([`is_whiteout`], [`is_opaque`]).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, mknodat};

/// Prefix of a whiteout entry's file name.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// File name that marks its directory opaque.
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The overlayfs xattr for opaque directories.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Prefix of every overlayfs-private xattr (never taken from a layer tar:
/// a hostile layer could otherwise plant redirects or metacopy markers).
pub const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// What a tar entry's file name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutKind<'a> {
    /// An ordinary entry.
    None,
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// `.wh.<name>`: delete `<name>` from the layers below.
    Remove(&'a [u8]),
    /// Another `.wh..wh.` meta entry (aufs hardlink dirs …): ignored.
    OtherMeta,
}

/// Classifies a file name (the last path component).
pub fn classify(name: &[u8]) -> WhiteoutKind<'_> {
    if name == OPAQUE_MARKER {
        WhiteoutKind::Opaque
    } else if name.starts_with(b".wh..wh.") {
        WhiteoutKind::OtherMeta
    } else if let Some(rest) = name.strip_prefix(WHITEOUT_PREFIX) {
        WhiteoutKind::Remove(rest)
    } else {
        WhiteoutKind::None
    }
}

/// Creates the overlayfs whiteout (char device 0:0) `name` in `parent`.
pub fn make_whiteout(parent: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    mknodat(
        parent,
        name,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o000),
        0,
    )
}

/// Marks the directory open as `dir` opaque.
pub fn set_opaque(dir: impl AsFd) -> std::io::Result<()> {
    fsetxattr(dir.as_fd(), OPAQUE_XATTR, b"y")
}

/// Sets an xattr on an open file descriptor.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> std::io::Result<()> {
    let cname = CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: `fd` is a valid open descriptor for the call's duration,
    // `cname` is NUL-terminated, and `value` is a live slice whose pointer
    // and length are passed together.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets an xattr on `path` without following a final symlink.
pub fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let cname = CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: both strings are NUL-terminated and outlive the call; `value`
    // is a live slice whose pointer and length are passed together.
    let rc = unsafe {
        libc::lsetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reads an xattr of `path` (not following a final symlink); `None` when
/// it is absent.
pub fn lgetxattr(path: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let cname = CString::new(name).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: both strings are NUL-terminated and outlive the call; `buf`
    // is a live, writable buffer whose pointer and length are passed
    // together.
    let rc = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if rc >= 0 {
        buf.truncate(rc as usize);
        return Ok(Some(buf));
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
        _ => Err(err),
    }
}

/// Whether `meta` (from `symlink_metadata`) is an overlayfs whiteout.
pub fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether directory `path` carries the overlayfs opaque xattr.
pub fn is_opaque(path: &Path) -> std::io::Result<bool> {
    Ok(lgetxattr(path, OPAQUE_XATTR)?.as_deref() == Some(b"y"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        assert_eq!(classify(b".wh..wh..opq"), WhiteoutKind::Opaque);
        assert_eq!(classify(b".wh.b.txt"), WhiteoutKind::Remove(b"b.txt"));
        assert_eq!(classify(b".wh..wh.plnk"), WhiteoutKind::OtherMeta);
        assert_eq!(classify(b"b.txt"), WhiteoutKind::None);
    }
}
