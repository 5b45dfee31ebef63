//! `linux.maskedPaths` and `linux.readonlyPaths`, applied after `pivot_root` (paths are
//! container paths). A masked file gets `/dev/null` bind-mounted over it, a masked
//! directory an empty read-only tmpfs; a read-only path is bind-mounted onto itself and
//! remounted read-only. Paths that do not exist in the container are skipped, as the
//! runtime spec and runc do.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

use super::{RootfsError, remount_readonly, step_err};

/// Masks `path`.
pub fn mask(path: &Path) -> Result<(), RootfsError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RootfsError::Step {
                step: "stat masked path",
                path: path.to_owned(),
                source,
            });
        }
    };
    let result = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    result.map_err(step_err("mask path", path))
}

/// Makes `path` read-only.
pub fn make_readonly(path: &Path) -> Result<(), RootfsError> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(step_err("bind read-only path", path)(e)),
    }
    remount_readonly(path).map_err(step_err("remount read-only path", path))
}
