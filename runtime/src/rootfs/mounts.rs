//! Performing the config's `mounts`, in order, inside the rootfs: bind/rbind (with a
//! bind-remount for ro/nosuid/nodev/noexec/...), every other filesystem type passed
//! straight to mount(2) with its data options (so an unknown type fails in the kernel
//! and is reported with the mount's index, type and destination), then any propagation
//! options.
//!
//! cgroup/cgroup2 mounts ([`CgroupMount`]): with a container cgroup, a cgroup2 mount
//! when the container has its own cgroup namespace (its root is then the container's
//! cgroup), else a bind mount of the container's cgroup directory, as runc does. With
//! cgroups disabled there is no container cgroup to show, and a real cgroup mount would
//! expose the host's hierarchy: like crun in the same mode, an empty read-only tmpfs is
//! mounted instead; for the same reason a bind of the host's `/sys` or `/` gets its
//! `fs/cgroup` covered the same way, and a bind of anything under the host's
//! `/sys/fs/cgroup` is refused.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use oci_spec::runtime::Mount;

use super::mount_options::{self, MountOptions};
use super::safe_path::{self, Leaf};
use super::{CgroupMount, RootfsError, current_mount_flags};

const HOST_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Performs every spec mount in order.
pub fn mount_all(
    root: &OwnedFd,
    mounts: &[Mount],
    cgroup: CgroupMount<'_>,
) -> Result<(), RootfsError> {
    for (index, m) in mounts.iter().enumerate() {
        mount_one(root, index, m, cgroup)?;
    }
    Ok(())
}

struct Ctx<'a> {
    index: usize,
    m: &'a Mount,
    typ: &'a str,
    source: String,
}

impl Ctx<'_> {
    fn err(&self, step: &'static str) -> impl FnOnce(nix::errno::Errno) -> RootfsError + '_ {
        move |e| RootfsError::Mount {
            index: self.index,
            destination: self.m.destination().clone(),
            source_path: self.source.clone(),
            typ: self.typ.to_owned(),
            step,
            source: e.into(),
        }
    }
}

fn mount_one(
    root: &OwnedFd,
    index: usize,
    m: &Mount,
    cgroup: CgroupMount<'_>,
) -> Result<(), RootfsError> {
    let typ = m.typ().as_deref().unwrap_or("");
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_owned());
    let ctx = Ctx {
        index,
        m,
        typ,
        source,
    };
    // Options were validated when the bundle was loaded; parse again for the flags.
    let opts = mount_options::parse(m.options().as_deref().unwrap_or(&[])).map_err(|e| {
        RootfsError::Mount {
            index,
            destination: m.destination().clone(),
            source_path: ctx.source.clone(),
            typ: typ.to_owned(),
            step: "parse options",
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
        }
    })?;
    let bind = opts.bind || typ == "bind";

    if !bind && (typ == "cgroup" || typ == "cgroup2") {
        let target = safe_path::create_in_root(root, m.destination(), Leaf::Dir)
            .map_err(ctx.err("create destination"))?;
        let target = safe_path::fd_path(&target);
        return match cgroup {
            CgroupMount::Placeholder => mount_cgroup_placeholder(&target).map_err(ctx.err("mount")),
            CgroupMount::Cgroup2 => {
                let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
                mount(Some("cgroup2"), &target, Some("cgroup2"), opts.set, data)
                    .map_err(ctx.err("mount cgroup2"))
            }
            CgroupMount::Bind(dir) => bind_mount(root, m.destination(), dir, &target, &opts)
                .map_err(ctx.err("bind the container's cgroup")),
        };
    }

    if bind {
        let host_source = std::fs::canonicalize(&ctx.source).map_err(|e| RootfsError::Mount {
            index,
            destination: m.destination().clone(),
            source_path: ctx.source.clone(),
            typ: typ.to_owned(),
            step: "resolve bind source",
            source: e,
        })?;
        let placeholder = cgroup == CgroupMount::Placeholder;
        if placeholder && host_source.starts_with(HOST_CGROUP_ROOT) {
            return Err(RootfsError::Mount {
                index,
                destination: m.destination().clone(),
                source_path: ctx.source.clone(),
                typ: typ.to_owned(),
                step: "check bind source",
                source: std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "bind-mounting the host cgroup hierarchy is refused while cgroups are disabled",
                ),
            });
        }
        let leaf = if host_source.is_dir() {
            Leaf::Dir
        } else {
            Leaf::File
        };
        let target = safe_path::create_in_root(root, m.destination(), leaf)
            .map_err(ctx.err("create destination"))?;
        let target = safe_path::fd_path(&target);
        bind_mount(root, m.destination(), &host_source, &target, &opts)
            .map_err(ctx.err("bind mount"))?;
        if placeholder && opts.recursive && Path::new(HOST_CGROUP_ROOT).starts_with(&host_source) {
            cover_host_cgroup(root, m.destination(), &host_source)
                .map_err(ctx.err("cover the host cgroup hierarchy"))?;
        }
        apply_propagation(root, m.destination(), &opts).map_err(ctx.err("set propagation"))?;
        return Ok(());
    }

    let target = safe_path::create_in_root(root, m.destination(), Leaf::Dir)
        .map_err(ctx.err("create destination"))?;
    let target = safe_path::fd_path(&target);
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let fstype = if typ.is_empty() { None } else { Some(typ) };
    mount(Some(ctx.source.as_str()), &target, fstype, opts.set, data).map_err(ctx.err("mount"))?;
    apply_propagation(root, m.destination(), &opts).map_err(ctx.err("set propagation"))?;
    Ok(())
}

/// The mount now on top of `destination`. An fd opened before a mount still names the
/// directory underneath it, so remounts and propagation changes must go through a fresh
/// one (else they hit the wrong mount, or fail with EINVAL on a non-mount-point).
fn reopen(root: &OwnedFd, destination: &Path) -> nix::Result<OwnedFd> {
    safe_path::open_in_root(root, destination)
}

fn bind_mount(
    root: &OwnedFd,
    destination: &Path,
    source: &Path,
    target: &Path,
    opts: &MountOptions,
) -> nix::Result<()> {
    let mut flags = MsFlags::MS_BIND;
    if opts.recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(source), target, None::<&str>, flags, None::<&str>)?;
    let per_mount = opts.set - MsFlags::MS_REMOUNT - MsFlags::MS_BIND - MsFlags::MS_REC;
    if per_mount.is_empty() && opts.clear.is_empty() {
        return Ok(());
    }
    // A bind mount ignores flags on creation: remount to apply them, starting from the
    // flags the new mount already has (some are locked in a user namespace).
    let fresh = reopen(root, destination)?;
    let fresh = safe_path::fd_path(&fresh);
    let flags = (current_mount_flags(&fresh)? | per_mount) - opts.clear;
    mount(
        None::<&str>,
        &fresh,
        None::<&str>,
        flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
        None::<&str>,
    )
}

fn apply_propagation(root: &OwnedFd, destination: &Path, opts: &MountOptions) -> nix::Result<()> {
    if opts.propagation.is_empty() {
        return Ok(());
    }
    let fresh = reopen(root, destination)?;
    let fresh = safe_path::fd_path(&fresh);
    for p in &opts.propagation {
        mount(None::<&str>, &fresh, None::<&str>, *p, None::<&str>)?;
    }
    Ok(())
}

/// The stand-in for a cgroup mount while cgroups are disabled: an empty, read-only tmpfs.
fn mount_cgroup_placeholder(target: &Path) -> nix::Result<()> {
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755,size=4k"),
    )
}

/// After an rbind of an ancestor of the host's `/sys/fs/cgroup`, hides the cgroup
/// hierarchy that came along with it.
fn cover_host_cgroup(root: &OwnedFd, destination: &Path, host_source: &Path) -> nix::Result<()> {
    let Ok(rest) = Path::new(HOST_CGROUP_ROOT).strip_prefix(host_source) else {
        return Ok(());
    };
    let inner: PathBuf = destination.join(rest);
    let target = match safe_path::open_in_root(root, &inner) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    mount_cgroup_placeholder(&safe_path::fd_path(&target))
}
