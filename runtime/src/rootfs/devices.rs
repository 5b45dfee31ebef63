//! Device nodes in the container's `/dev`: runc's default set (null, zero, full, random,
//! urandom, tty) plus `linux.devices`, created with `mknod` — or, inside a user namespace
//! where `mknod` is not permitted, bind-mounted from the host's node onto an empty file.
//! Also the standard `/dev` symlinks (`fd`, `stdin`, `stdout`, `stderr`, `ptmx` →
//! `pts/ptmx`, `core` when the host has `/proc/kcore`). Nothing here is done when the
//! config bind-mounts `/dev` from the host (runc's rule).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, symlinkat, unlinkat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use super::safe_path::{self, Leaf};
use super::{RootfsError, step_err};

struct DeviceNode {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

const DEFAULTS: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Whether the config bind-mounts `/dev` (then the runtime leaves `/dev` alone).
pub fn dev_is_bind_mounted(mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| {
        safe_path::relative(m.destination()) == Path::new("dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

/// Creates the default devices not overridden by `linux.devices`.
pub fn create_default_devices(
    root: &OwnedFd,
    spec_devices: &[LinuxDevice],
    in_user_ns: bool,
) -> Result<(), RootfsError> {
    for (path, major, minor) in DEFAULTS {
        if spec_devices.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        let node = DeviceNode {
            path: PathBuf::from(path),
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        create(root, &node, in_user_ns)?;
    }
    Ok(())
}

/// Creates `linux.devices`.
pub fn create_spec_devices(
    root: &OwnedFd,
    devices: &[LinuxDevice],
    in_user_ns: bool,
) -> Result<(), RootfsError> {
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RootfsError::Step {
                    step: "linux.devices: type \"a\" is not a device node type",
                    path: d.path().clone(),
                    source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
                });
            }
        };
        let node = DeviceNode {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        create(root, &node, in_user_ns)?;
    }
    Ok(())
}

fn create(root: &OwnedFd, node: &DeviceNode, in_user_ns: bool) -> Result<(), RootfsError> {
    let parent_path = node.path.parent().unwrap_or(Path::new("/"));
    let name = node.path.file_name().ok_or_else(|| RootfsError::Step {
        step: "device path has no file name",
        path: node.path.clone(),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    if in_user_ns {
        // mknod is not permitted in a user namespace: bind the host's node instead.
        let target = safe_path::create_in_root(root, &node.path, Leaf::File)
            .map_err(step_err("create device bind target", &node.path))?;
        return mount(
            Some(&node.path),
            &safe_path::fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(step_err("bind-mount host device", &node.path));
    }
    let parent = safe_path::create_in_root(root, parent_path, Leaf::Dir)
        .map_err(step_err("create device directory", parent_path))?;
    match mknodat(
        &parent,
        name,
        node.kind,
        Mode::from_bits_truncate(node.mode),
        makedev(node.major, node.minor),
    ) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(step_err("mknod", &node.path)(e)),
    }
    fchownat(
        &parent,
        name,
        Some(Uid::from_raw(node.uid)),
        Some(Gid::from_raw(node.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(step_err("chown device", &node.path))
}

/// The standard `/dev` symlinks.
pub fn create_dev_symlinks(root: &OwnedFd) -> Result<(), RootfsError> {
    let dev = safe_path::create_in_root(root, Path::new("/dev"), Leaf::Dir)
        .map_err(step_err("open", "/dev"))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(step_err("symlink", Path::new("/dev").join(name))(e)),
        }
    }
    // /dev/ptmx must point into the container's own devpts instance.
    match unlinkat(&dev, "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(step_err("remove", "/dev/ptmx")(e)),
    }
    symlinkat("pts/ptmx", &dev, "ptmx").map_err(step_err("symlink", "/dev/ptmx"))
}
