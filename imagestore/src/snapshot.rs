//! Container root filesystems assembled from an image's unpacked layers.
//!
//! - [`RootfsMode::Overlay`]: an overlayfs mount at
//!   `containers/<id>/merged` with the image's layer directories as
//!   `lowerdir` (topmost first) and the container's own `upper/` and
//!   `work/`. Nothing is copied; layers stay shared. `mount(2)` when the
//!   options fit its one-page limit, else the new mount API with one
//!   `lowerdir+` per layer ([`crate::mount_api`]), so images with more
//!   layers than fit a page still mount.
//! - [`RootfsMode::Copy`]: a plain copy at `containers/<id>/rootfs`,
//!   applying the layers base first and interpreting their overlayfs
//!   whiteouts and opaque directories, for hosts without overlayfs. It is
//!   an explicit choice of the caller, never a silent fallback.
//!
//! The container record (held in the metadata store) keeps the layers
//! alive until [`ImageStore::remove_rootfs`].

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, mknod};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use tracing::info;

use crate::error::{Result, StoreError};
use crate::metadata::ContainerRecord;
use crate::mount_api;
use crate::store::ImageStore;
use crate::whiteouts;

/// How a container rootfs is assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsMode {
    /// overlayfs over the shared layers (needs root and overlayfs).
    Overlay,
    /// A private copy (slow, uses space; works everywhere).
    Copy,
}

impl RootfsMode {
    fn as_str(self) -> &'static str {
        match self {
            RootfsMode::Overlay => "overlay",
            RootfsMode::Copy => "copy",
        }
    }
}

/// A prepared container rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The container ID.
    pub container_id: String,
    /// The directory to use as the container's root.
    pub path: PathBuf,
    /// How it was assembled.
    pub mode: RootfsMode,
}

fn valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
}

impl ImageStore {
    fn container_dir(&self, id: &str) -> PathBuf {
        self.inner.containers_dir.join(id)
    }

    /// Assembles the rootfs of container `container_id` from image `image`.
    pub fn prepare_rootfs(
        &self,
        image: &str,
        container_id: &str,
        mode: RootfsMode,
    ) -> Result<Rootfs> {
        if !valid_container_id(container_id) {
            return Err(StoreError::Container {
                container: container_id.to_owned(),
                reason: "IDs are 1-128 characters of [A-Za-z0-9_.-], starting alphanumeric"
                    .to_owned(),
            });
        }
        // Holds GC off until the container record holds the layers.
        let _lease = self.inner.leases.lease();
        let record = self.image(image)?;
        let dir = self.container_dir(container_id);
        // Held by the record from here on, so GC keeps the layers.
        self.inner.meta.put_container(&ContainerRecord {
            id: container_id.to_owned(),
            image: record.name.clone(),
            chain_ids: record.chain_ids(),
            mode: mode.as_str().to_owned(),
        })?;
        let result = match mode {
            RootfsMode::Overlay => self.mount_overlay(&record.chain_ids(), container_id, &dir),
            RootfsMode::Copy => self.copy_rootfs(&record.chain_ids(), &dir),
        };
        match result {
            Ok(path) => {
                info!(container = container_id, image = %record.name, mode = mode.as_str(), path = %path.display(), "rootfs prepared");
                Ok(Rootfs {
                    container_id: container_id.to_owned(),
                    path,
                    mode,
                })
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                let _ = self.inner.meta.remove_container(container_id);
                Err(e)
            }
        }
    }

    fn mount_overlay(&self, chains: &[crate::Digest], id: &str, dir: &Path) -> Result<PathBuf> {
        if !nix::unistd::geteuid().is_root() {
            return Err(StoreError::NeedsRoot {
                what: "an overlayfs rootfs".to_owned(),
            });
        }
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d).map_err(|e| StoreError::io("create directory", d, e))?;
        }
        let lowers: Vec<PathBuf> = chains.iter().rev().map(|c| self.layer_dir(c)).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers
                .iter()
                .map(|l| l.to_string_lossy())
                .collect::<Vec<_>>()
                .join(":"),
            upper.display(),
            work.display()
        );
        let mount_err = |e: std::io::Error| StoreError::Mount {
            op: format!("mount overlay at {}", merged.display()),
            container: id.to_owned(),
            source: e,
        };
        let fits_mount_2 = data.len() < 4000
            && !data.contains(['\\', '\n'])
            && !self.root().to_string_lossy().contains([',', ':']);
        if fits_mount_2 {
            mount(
                Some("overlay"),
                &merged,
                Some("overlay"),
                MsFlags::empty(),
                Some(data.as_str()),
            )
            .map_err(|e| mount_err(e.into()))?;
        } else {
            // Too many layers (or awkward paths) for mount(2)'s one-page
            // option string: one `lowerdir+` per layer.
            mount_api::mount_overlay(&lowers, &upper, &work, &merged).map_err(mount_err)?;
        }
        Ok(merged)
    }

    fn copy_rootfs(&self, chains: &[crate::Digest], dir: &Path) -> Result<PathBuf> {
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).map_err(|e| StoreError::io("create directory", &rootfs, e))?;
        for chain in chains {
            apply_tree(&self.layer_dir(chain), &rootfs)?;
        }
        Ok(rootfs)
    }

    /// Unmounts (if mounted) and deletes the rootfs of `container_id`,
    /// releasing its layers. Absent is fine (idempotent).
    pub fn remove_rootfs(&self, container_id: &str) -> Result<()> {
        if !valid_container_id(container_id) {
            return Err(StoreError::Container {
                container: container_id.to_owned(),
                reason: "invalid ID".to_owned(),
            });
        }
        let dir = self.container_dir(container_id);
        let merged = dir.join("merged");
        if merged.exists() {
            match umount2(&merged, MntFlags::UMOUNT_NOFOLLOW) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => {
                    return Err(StoreError::Mount {
                        op: format!("unmount {}", merged.display()),
                        container: container_id.to_owned(),
                        source: e.into(),
                    });
                }
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove", &dir, e)),
        }
        self.inner.meta.remove_container(container_id)?;
        info!(container = container_id, "rootfs removed");
        Ok(())
    }
}

fn remove_any(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("stat", path, e)),
    };
    let r = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    r.map_err(|e| StoreError::io("remove", path, e))
}

fn copy_meta(src: &fs::Metadata, dst: &Path, symlink: bool) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            dst,
            Some(Uid::from_raw(src.uid())),
            Some(Gid::from_raw(src.gid())),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| StoreError::errno("chown", dst, e))?;
    }
    if !symlink {
        fs::set_permissions(dst, fs::Permissions::from_mode(src.mode() & 0o7777))
            .map_err(|e| StoreError::io("chmod", dst, e))?;
    }
    let t = TimeSpec::new(src.mtime(), src.mtime_nsec());
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        dst,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| StoreError::errno("set mtime of", dst, e))
}

/// Applies one overlayfs-form layer directory onto `dst` (a real tree we
/// own). Never follows a symlink in `dst`: anything in the way that is not
/// a real directory is replaced, as overlayfs would show it.
fn apply_tree(src: &Path, dst: &Path) -> Result<()> {
    let entries = fs::read_dir(src).map_err(|e| StoreError::io("read", src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("read", src, e))?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&s).map_err(|e| StoreError::io("stat", &s, e))?;
        if whiteouts::is_whiteout(&meta) {
            remove_any(&d)?;
            continue;
        }
        let ft = meta.file_type();
        if ft.is_dir() {
            let existing = fs::symlink_metadata(&d).ok();
            let opaque =
                whiteouts::is_opaque(&s).map_err(|e| StoreError::io("read xattrs of", &s, e))?;
            match existing {
                Some(m) if m.is_dir() && !opaque => {}
                Some(_) => {
                    remove_any(&d)?;
                    fs::create_dir(&d).map_err(|e| StoreError::io("create directory", &d, e))?;
                }
                None => {
                    fs::create_dir(&d).map_err(|e| StoreError::io("create directory", &d, e))?
                }
            }
            apply_tree(&s, &d)?;
            copy_meta(&meta, &d, false)?;
        } else {
            remove_any(&d)?;
            if ft.is_symlink() {
                let target = fs::read_link(&s).map_err(|e| StoreError::io("readlink", &s, e))?;
                std::os::unix::fs::symlink(&target, &d)
                    .map_err(|e| StoreError::io("symlink", &d, e))?;
                copy_meta(&meta, &d, true)?;
            } else if ft.is_file() {
                fs::copy(&s, &d).map_err(|e| StoreError::io("copy to", &d, e))?;
                copy_meta(&meta, &d, false)?;
            } else {
                let kind = SFlag::from_bits_truncate(meta.mode()) & SFlag::S_IFMT;
                mknod(
                    &d,
                    kind,
                    Mode::from_bits_truncate(meta.mode() & 0o7777),
                    meta.rdev(),
                )
                .map_err(|e| StoreError::errno("mknod", &d, e))?;
                copy_meta(&meta, &d, false)?;
            }
        }
    }
    Ok(())
}
