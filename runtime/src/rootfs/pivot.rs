//! Switching the root: `pivot_root` (the default) or, with `--no-pivot`, `MS_MOVE` of the
//! rootfs onto `/` plus `chroot` (for ramdisk roots where pivot_root is not allowed).
//!
//! pivot_root uses the `pivot_root(".", ".")` idiom (as runc does): no `put_old`
//! directory is needed inside the image; the old root ends up stacked under the new one
//! and is detached right away, after being made rslave so the unmount cannot propagate
//! to the host.

use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir};

use super::{RootfsError, step_err};

/// `pivot_root` into `rootfs` and detach the old root.
pub fn pivot_root(rootfs: &Path) -> Result<(), RootfsError> {
    let old_root = open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(step_err("open old root", "/"))?;
    let new_root = open(
        rootfs,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(step_err("open new root", rootfs))?;
    fchdir(&new_root).map_err(step_err("chdir", rootfs))?;
    nix::unistd::pivot_root(".", ".").map_err(step_err("pivot_root", rootfs))?;
    fchdir(&old_root).map_err(step_err("chdir to old root", "/"))?;
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step_err("make old root rslave", "/"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(step_err("unmount old root", "/"))?;
    chdir("/").map_err(step_err("chdir", "/"))
}

/// `--no-pivot`: move the rootfs mount onto `/` and chroot into it.
pub fn move_root(rootfs: &Path) -> Result<(), RootfsError> {
    chdir(rootfs).map_err(step_err("chdir", rootfs))?;
    mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .map_err(step_err("move rootfs onto /", rootfs))?;
    chroot(".").map_err(step_err("chroot", rootfs))?;
    chdir("/").map_err(step_err("chdir", "/"))
}
