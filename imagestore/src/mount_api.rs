//! overlayfs mounts through the new mount API (`fsopen`, `fsconfig`,
//! `fsmount`, `move_mount`; Linux ≥ 6.8 for `lowerdir+`). Each lower
//! directory is passed as its own `lowerdir+` parameter, so the number of
//! layers is not limited by `mount(2)`'s one-page option string (about 40
//! layers at typical store paths), and paths need no escaping.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn set_string(fs: &OwnedFd, key: &str, value: &Path) -> io::Result<()> {
    let key = cstring(key.as_bytes())?;
    let value = cstring(value.as_os_str().as_bytes())?;
    // SAFETY: `fs` is an open fs-context descriptor; `key` and `value` are
    // NUL-terminated strings that outlive the call; aux is unused (0).
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// Mounts overlayfs at `target` with `lowers` (topmost first), `upper`
/// and `work`.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    let fstype = cstring(b"overlay")?;
    // SAFETY: `fstype` is a NUL-terminated string that outlives the call.
    let fd = check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fsopen returned a new descriptor that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    for lower in lowers {
        set_string(&fs, "lowerdir+", lower)?;
    }
    set_string(&fs, "upperdir", upper)?;
    set_string(&fs, "workdir", work)?;
    // SAFETY: `fs` is an open fs-context descriptor; the other arguments
    // are unused for FSCONFIG_CMD_CREATE and passed as null/0.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: `fs` is a configured fs context; flags and attributes are
    // plain integers.
    let mnt =
        check(unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) })?;
    // SAFETY: fsmount returned a new descriptor that nothing else owns.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as libc::c_int) };
    let empty = cstring(b"")?;
    let target = cstring(target.as_os_str().as_bytes())?;
    // SAFETY: `mnt` is the detached mount to attach; both paths are
    // NUL-terminated strings that outlive the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}
