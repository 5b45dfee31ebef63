//! The container's root filesystem, set up by init inside its mount namespace:
//!
//! 1. [`prepare`] (before `pivot_root`, paths resolved against the host path of the
//!    rootfs): root propagation, bind of the rootfs onto itself, every spec mount in order
//!    ([`mounts`]), device nodes and `/dev` symlinks ([`devices`]); then [`enter`]:
//!    `pivot_root` or `MS_MOVE` + `chroot` ([`pivot`]) (hooks run in between).
//! 2. [`finish`] (after `pivot_root`, once sysctls are written): masked and read-only
//!    paths ([`masked_paths`]) and the read-only root remount.
//!
//! Destinations inside the rootfs are resolved with `openat2(RESOLVE_IN_ROOT)` so a
//! symlink in the image can never point a mount outside the rootfs ([`safe_path`]).

pub mod devices;
pub mod masked_paths;
pub mod mount_options;
pub mod mounts;
pub mod pivot;
pub mod safe_path;

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::statvfs::{FsFlags, statvfs};
use oci_spec::runtime::Spec;

/// Errors setting up the rootfs, each naming the step and path.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A spec mount failed.
    #[error(
        "mounts[{index}]: mount {source_path} on {destination} (type {typ:?}): {step}: {source}"
    )]
    Mount {
        /// Index in `mounts`.
        index: usize,
        /// The mount's destination (container path).
        destination: PathBuf,
        /// The mount's source.
        source_path: String,
        /// The mount's type.
        typ: String,
        /// What was being done.
        step: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// Any other rootfs step.
    #[error("{step} {path}: {source}")]
    Step {
        /// What was being done.
        step: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

pub(crate) fn step_err(
    step: &'static str,
    path: impl AsRef<Path>,
) -> impl FnOnce(nix::errno::Errno) -> RootfsError {
    let path = path.as_ref().to_owned();
    move |e| RootfsError::Step {
        step,
        path,
        source: e.into(),
    }
}

/// What a `cgroup`/`cgroup2` mount in the config becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMount<'a> {
    /// Cgroups disabled: an empty read-only tmpfs (and the host hierarchy is never
    /// exposed through binds).
    Placeholder,
    /// A cgroup2 mount, in the container's own cgroup namespace (so its root is the
    /// container's cgroup).
    Cgroup2,
    /// No cgroup namespace: a bind mount of the container's cgroup directory (runc).
    Bind(&'a Path),
}

/// Options that shape the rootfs set-up.
#[derive(Debug, Clone, Copy)]
pub struct RootfsOptions<'a> {
    /// Init runs in a user namespace (device nodes are bind-mounted, not created).
    pub in_user_ns: bool,
    /// `--no-pivot`: move the rootfs onto `/` and chroot instead of `pivot_root`.
    pub no_pivot: bool,
    /// What cgroup mounts become.
    pub cgroup: CgroupMount<'a>,
}

/// Everything up to (not including) `pivot_root`: see [`enter`].
pub fn prepare(spec: &Spec, rootfs: &Path, opts: RootfsOptions<'_>) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    let propagation = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
        .and_then(mount_options::propagation)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    // Keep the container's mounts from propagating back to the host (and vice versa,
    // unless the config asks for shared propagation).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        propagation | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step_err("set root propagation on", "/"))?;
    if propagation.contains(MsFlags::MS_SHARED) {
        // pivot_root refuses a new root whose parent mount is shared.
        let parent = mount_point_of(rootfs).map_err(|source| RootfsError::Step {
            step: "find mount point of",
            path: rootfs.to_owned(),
            source,
        })?;
        mount(
            None::<&str>,
            &parent,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(step_err("make parent mount private", &parent))?;
    }
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(step_err("bind-mount rootfs onto itself", rootfs))?;

    let root_fd = safe_path::open_root(rootfs)?;
    let spec_mounts = spec.mounts().as_deref().unwrap_or(&[]);
    mounts::mount_all(&root_fd, spec_mounts, opts.cgroup)?;

    if !devices::dev_is_bind_mounted(spec_mounts) {
        let spec_devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
        devices::create_default_devices(&root_fd, spec_devices, opts.in_user_ns)?;
        devices::create_spec_devices(&root_fd, spec_devices, opts.in_user_ns)?;
        devices::create_dev_symlinks(&root_fd)?;
    }
    drop(root_fd);
    Ok(())
}

/// Makes the rootfs the process's root: `pivot_root`, or `MS_MOVE` + `chroot` with
/// `--no-pivot`.
pub fn enter(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    if no_pivot {
        pivot::move_root(rootfs)
    } else {
        pivot::pivot_root(rootfs)
    }
}

/// Everything after `pivot_root` (and after sysctls, which need a writable /proc/sys).
pub fn finish(spec: &Spec) -> Result<(), RootfsError> {
    if let Some(linux) = spec.linux() {
        for path in linux.readonly_paths().iter().flatten() {
            masked_paths::make_readonly(Path::new(path))?;
        }
        for path in linux.masked_paths().iter().flatten() {
            masked_paths::mask(Path::new(path))?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        remount_readonly(Path::new("/")).map_err(step_err("remount read-only", "/"))?;
    }
    Ok(())
}

/// Remounts the bind mount at `path` read-only, keeping the flags it already has (in a
/// user namespace, nosuid/nodev/noexec/atime flags are locked and dropping them is EPERM).
pub fn remount_readonly(path: &Path) -> nix::Result<()> {
    let flags = current_mount_flags(path)? | MsFlags::MS_RDONLY;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
        None::<&str>,
    )
}

/// The per-mount flags of the mount at `path`, as mount(2) flags.
pub fn current_mount_flags(path: &Path) -> nix::Result<MsFlags> {
    let st = statvfs(path)?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    Ok(out)
}

/// The mount point (from `/proc/self/mountinfo`) that contains `path`.
fn mount_point_of(path: &Path) -> io::Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut best = PathBuf::from("/");
    for line in info.lines() {
        // Field 5 is the mount point (octal-escaped).
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp = PathBuf::from(mp.replace("\\040", " "));
        if path.starts_with(&mp) && mp.as_os_str().len() > best.as_os_str().len() {
            best = mp;
        }
    }
    Ok(best)
}
