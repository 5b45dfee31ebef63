//! Safe extraction of one (hostile) layer tar into an empty directory, in
//! overlayfs form.
//!
//! Every entry is placed with `*at` syscalls relative to directory file
//! descriptors; parent directories are resolved with `openat2(2)` and
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, so a symlink planted by an
//! earlier entry (`evil -> /etc`, `a -> ../../..`) is resolved *inside* the
//! layer directory, as if it were `/`: a write "through" it lands in the
//! layer, never outside. The final component is created with `O_EXCL |
//! O_NOFOLLOW` (or `mkdirat`/`symlinkat`/`mknodat`, which never follow), so
//! no existing symlink is ever written through either.
//!
//! Rules:
//! - Paths: a leading `/` is stripped (as containerd does), `.` and empty
//!   components dropped, any `..` component refused; names over 255 bytes,
//!   paths over 4096 bytes, and long-name/PAX header entries over 1 MiB are
//!   refused (the `tar` crate would otherwise buffer them whole).
//! - Symlink targets are stored verbatim (they are data, interpreted later
//!   inside the container's root, where absolute targets are normal); they
//!   are only ever followed during unpacking confined to the layer root.
//! - Hardlinks must name an entry inside the layer (resolved like parents);
//!   `/etc/passwd` means the layer's own `etc/passwd`.
//! - Device nodes only when running as root; FIFOs always.
//! - Whiteouts become overlayfs whiteouts ([`crate::whiteouts`]);
//!   overlayfs-private xattrs (`trusted.overlay.*`) in the tar are dropped.
//! - Ownership (when root), modes including setuid/setgid/sticky, PAX
//!   `SCHILY.xattr.*` xattrs, mtimes, and hardlinks are preserved.
//!   Directory modes and mtimes are applied last, children first, so later
//!   entries can neither be blocked by a read-only directory nor bump a
//!   restored mtime.
//!
//! The uncompressed stream is hashed as it is read (including the tar's
//! trailing padding) so the caller can check it against the config's diff ID.
//!
//! Known limitation: each layer is unpacked on its own, so a symlink from a
//! *lower* layer (e.g. `lib -> usr/lib`) is not seen; an upper layer entry
//! `lib/x` creates a real `lib/` directory in its own layer. containerd's
//! overlay snapshotter has the same behaviour when applying onto an empty
//! upper directory.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fstatat, futimens, mkdirat, mknodat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use tar::EntryType;
use tracing::{debug, info, warn};

use crate::compression::Compression;
use crate::digest::{Digest, HashingReader};
use crate::error::{Result, StoreError};
use crate::whiteouts::{self, WhiteoutKind};

/// Longest accepted path (bytes), as Linux's `PATH_MAX`.
pub const MAX_PATH: usize = 4096;
/// Longest accepted path component (bytes), as Linux's `NAME_MAX`.
pub const MAX_NAME: usize = 255;
/// Largest accepted GNU long-name / long-link / PAX header entry.
pub const MAX_META_ENTRY: u64 = 1 << 20;

/// What unpacking a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackSummary {
    /// sha256 of the uncompressed tar stream (compare to the diff ID).
    pub diff_id: Digest,
    /// Length of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// Entries applied (whiteouts included).
    pub entries: u64,
}

/// Unpacks the layer blob `blob` (compressed as `compression`) into the
/// existing, empty directory `dest`. `layer` names the blob in errors.
pub fn unpack_layer<R: Read>(
    blob: R,
    compression: Compression,
    layer: &Digest,
    dest: &Path,
) -> Result<UnpackSummary> {
    let stream_err = |source| StoreError::Unpack {
        digest: layer.clone(),
        entry: String::new(),
        source,
    };
    let decoder = compression.decoder(blob, layer)?;
    let mut archive = tar::Archive::new(HashingReader::new(decoder));
    let mut unpacker = Unpacker::new(dest, layer)?;
    let mut entries = 0u64;
    {
        let iter = archive.entries().map_err(stream_err)?.raw(true);
        let mut pending = Pending::default();
        for entry in iter {
            let mut entry = entry.map_err(stream_err)?;
            if unpacker.take_meta_entry(&mut entry, &mut pending)? {
                continue;
            }
            let meta = std::mem::take(&mut pending);
            unpacker.apply(&mut entry, meta)?;
            entries += 1;
        }
    }
    unpacker.finish_dirs()?;
    let (diff_id, tar_bytes) = archive.into_inner().finish().map_err(stream_err)?;
    debug!(%layer, %diff_id, entries, tar_bytes, "layer unpacked");
    Ok(UnpackSummary {
        diff_id,
        tar_bytes,
        entries,
    })
}

/// GNU long name/link and PAX records that apply to the next entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

/// Metadata taken from the header and PAX records.
struct EntryMeta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
    /// PAX `path`, overriding the header's.
    pax_path: Option<Vec<u8>>,
    /// PAX `linkpath`, overriding the header's.
    pax_link: Option<Vec<u8>>,
}

/// A directory whose mode and mtime are applied at the end.
struct DeferredDir {
    rel: Vec<u8>,
    mode: u32,
    mtime: i64,
}

struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a Digest,
    is_root: bool,
    dirs: Vec<DeferredDir>,
    /// The last resolved parent directory (tar entries come grouped by
    /// directory). Dropped whenever an entry is removed, since that can
    /// change what a path resolves to.
    parent_cache: Option<(Vec<u8>, OwnedFd)>,
    buf: Vec<u8>,
}

/// `openat2` resolution used for every lookup inside the layer.
fn in_root() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// Splits a tar path into clean components, or says why it is refused.
fn clean_path(raw: &[u8]) -> std::result::Result<Vec<&[u8]>, String> {
    if raw.len() > MAX_PATH {
        return Err(format!("path longer than {MAX_PATH} bytes"));
    }
    if raw.contains(&0) {
        return Err("NUL byte in path".to_owned());
    }
    let mut out = Vec::new();
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("`..` component".to_owned()),
            name if name.len() > MAX_NAME => {
                return Err(format!("component longer than {MAX_NAME} bytes"));
            }
            name => out.push(name),
        }
    }
    Ok(out)
}

fn trim_nuls(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

impl<'a> Unpacker<'a> {
    fn new(dest: &Path, layer: &'a Digest) -> Result<Self> {
        let root = nix::fcntl::open(
            dest,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| StoreError::errno("open layer directory", dest, e))?;
        Ok(Unpacker {
            root,
            layer,
            is_root: nix::unistd::geteuid().is_root(),
            dirs: Vec::new(),
            parent_cache: None,
            buf: vec![0; 256 * 1024],
        })
    }

    fn refuse(&self, entry: &[u8], reason: impl Into<String>) -> StoreError {
        StoreError::UnsafeEntry {
            digest: self.layer.clone(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    fn io_err(&self, entry: &[u8], source: impl Into<io::Error>) -> StoreError {
        StoreError::Unpack {
            digest: self.layer.clone(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            source: source.into(),
        }
    }

    /// Consumes GNU long-name/long-link, PAX and global-header entries
    /// (bounded in size). Returns whether `entry` was such an entry.
    fn take_meta_entry<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        pending: &mut Pending,
    ) -> Result<bool> {
        let kind = entry.header().entry_type();
        let slot = match kind {
            EntryType::GNULongName => &mut pending.long_name,
            EntryType::GNULongLink => &mut pending.long_link,
            EntryType::XHeader => &mut pending.pax,
            EntryType::XGlobalHeader => {
                let size = entry.header().entry_size().unwrap_or(u64::MAX);
                if size > MAX_META_ENTRY {
                    return Err(self.refuse(b"<pax global header>", "oversized header entry"));
                }
                io::copy(entry, &mut io::sink()).map_err(|e| self.io_err(b"", e))?;
                return Ok(true);
            }
            _ => return Ok(false),
        };
        let size = entry.header().entry_size().unwrap_or(u64::MAX);
        if size > MAX_META_ENTRY {
            return Err(self.refuse(
                &entry.path_bytes(),
                format!("oversized {kind:?} header entry ({size} bytes)"),
            ));
        }
        if slot.is_some() {
            return Err(self.refuse(&entry.path_bytes(), "two header entries for one member"));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|e| self.io_err(b"", e))?;
        *slot = Some(data);
        Ok(true)
    }

    /// Opens `rel` (clean components joined by `/`) inside the layer root.
    fn open_in_root(&self, rel: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
        let rel = if rel.is_empty() { &b"."[..] } else { rel };
        openat2(
            self.root.as_fd(),
            os(rel),
            OpenHow::new()
                .flags(flags | OFlag::O_CLOEXEC)
                .resolve(in_root()),
        )
    }

    /// Resolves directory `components` (creating missing ones, mode 0755)
    /// inside the layer root and returns an `O_PATH` descriptor.
    fn dir_fd(&mut self, components: &[&[u8]]) -> nix::Result<OwnedFd> {
        let rel = components.join(&b'/');
        let cached = matches!(&self.parent_cache, Some((path, _)) if *path == rel);
        if !cached {
            let fd = match self.open_in_root(&rel, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => self.create_dirs(components)?,
                Err(e) => return Err(e),
            };
            self.parent_cache = Some((rel, fd));
        }
        match &self.parent_cache {
            Some((_, fd)) => fd
                .try_clone()
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EBADF))),
            None => Err(Errno::ENOENT),
        }
    }

    fn create_dirs(&self, components: &[&[u8]]) -> nix::Result<OwnedFd> {
        let mut parent = self.open_in_root(b"", OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        for i in 0..components.len() {
            let rel = components[..=i].join(&b'/');
            let fd = match self.open_in_root(&rel, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    match mkdirat(
                        parent.as_fd(),
                        os(components[i]),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    self.open_in_root(&rel, OFlag::O_PATH | OFlag::O_DIRECTORY)?
                }
                Err(e) => return Err(e),
            };
            parent = fd;
        }
        Ok(parent)
    }

    /// Removes whatever `name` in `parent` is (a directory tree too),
    /// unless `keep_dir` and it is a directory. Returns whether a
    /// directory was kept.
    fn remove_existing(
        &mut self,
        parent_rel: &[u8],
        name: &[u8],
        keep_dir: bool,
    ) -> nix::Result<bool> {
        let parent = self.open_in_root(parent_rel, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let stat = match fstatat(parent.as_fd(), os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(e),
        };
        let is_dir = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if is_dir && keep_dir {
            return Ok(true);
        }
        self.parent_cache = None;
        if is_dir {
            // std's remove_dir_all never follows symlinks inside the tree.
            let path =
                PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(os(name));
            std::fs::remove_dir_all(&path)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        } else {
            unlinkat(parent.as_fd(), os(name), UnlinkatFlags::NoRemoveDir)?;
        }
        Ok(false)
    }

    fn entry_meta<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        pax: Option<&[u8]>,
        raw_path: &[u8],
    ) -> Result<EntryMeta> {
        let header = entry.header();
        let bad =
            |what: &str, e: io::Error| self.refuse(raw_path, format!("bad {what} in header: {e}"));
        let mut meta = EntryMeta {
            mode: header.mode().map_err(|e| bad("mode", e))? & 0o7777,
            uid: header.uid().map_err(|e| bad("uid", e))?,
            gid: header.gid().map_err(|e| bad("gid", e))?,
            mtime: header.mtime().map_err(|e| bad("mtime", e))? as i64,
            xattrs: Vec::new(),
            pax_path: None,
            pax_link: None,
        };
        if let Some(pax) = pax {
            for ext in tar::PaxExtensions::new(pax) {
                let ext = ext.map_err(|e| bad("PAX record", e))?;
                let key = ext
                    .key()
                    .map_err(|_| self.refuse(raw_path, "non-UTF-8 PAX key"))?;
                let value = ext.value_bytes();
                let number = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.split('.').next())
                        .and_then(|v| v.parse::<i64>().ok())
                        .ok_or_else(|| self.refuse(raw_path, format!("bad PAX {key}")))
                };
                match key {
                    "path" => meta.pax_path = Some(value.to_vec()),
                    "linkpath" => meta.pax_link = Some(value.to_vec()),
                    "uid" => meta.uid = number()? as u64,
                    "gid" => meta.gid = number()? as u64,
                    "mtime" => meta.mtime = number()?,
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            if name.starts_with(whiteouts::OVERLAY_XATTR_PREFIX) {
                                warn!(layer = %self.layer, entry = %String::from_utf8_lossy(raw_path), xattr = name, "dropping overlayfs-private xattr from layer");
                            } else {
                                meta.xattrs.push((name.to_owned(), value.to_vec()));
                            }
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, pending: Pending) -> Result<()> {
        let header_path = entry.path_bytes().into_owned();
        let header_link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut meta = self.entry_meta(entry, pending.pax.as_deref(), &header_path)?;
        let raw_path = meta
            .pax_path
            .take()
            .or(pending.long_name.map(trim_nuls))
            .unwrap_or(header_path);
        let raw_link = meta
            .pax_link
            .take()
            .or(pending.long_link.map(trim_nuls))
            .or(header_link);
        let components = clean_path(&raw_path).map_err(|r| self.refuse(&raw_path, r))?;
        let kind = entry.header().entry_type();
        let Some((&name, parents)) = components.split_last() else {
            // The layer root itself ("./"): nothing to create.
            return Ok(());
        };
        let parent_rel = parents.join(&b'/');
        let rel = components.join(&b'/');

        match whiteouts::classify(name) {
            WhiteoutKind::None => {}
            WhiteoutKind::OtherMeta => return Ok(()),
            WhiteoutKind::Opaque => {
                if !self.is_root {
                    return Err(self.refuse(
                        &raw_path,
                        "opaque directories (trusted.overlay.opaque) need root",
                    ));
                }
                self.dir_fd(parents)
                    .map_err(|e| self.io_err(&raw_path, e))?;
                let dir = self
                    .open_in_root(
                        &parent_rel,
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                    )
                    .map_err(|e| self.io_err(&raw_path, e))?;
                whiteouts::set_opaque(&dir).map_err(|e| self.io_err(&raw_path, e))?;
                return Ok(());
            }
            WhiteoutKind::Remove(target) => {
                if !self.is_root {
                    return Err(
                        self.refuse(&raw_path, "overlayfs whiteouts (char device 0:0) need root")
                    );
                }
                // `.wh..` / `.wh...` would name the directory itself or its
                // parent (outside the layer, at the root).
                if target.is_empty() || target == b"." || target == b".." {
                    return Err(self.refuse(&raw_path, "whiteout of an empty, `.` or `..` name"));
                }
                self.dir_fd(parents)
                    .map_err(|e| self.io_err(&raw_path, e))?;
                self.remove_existing(&parent_rel, target, false)
                    .map_err(|e| self.io_err(&raw_path, e))?;
                let parent = self
                    .dir_fd(parents)
                    .map_err(|e| self.io_err(&raw_path, e))?;
                whiteouts::make_whiteout(parent.as_fd(), target)
                    .map_err(|e| self.io_err(&raw_path, e))?;
                return Ok(());
            }
        }

        self.dir_fd(parents)
            .map_err(|e| self.io_err(&raw_path, e))?;
        let is_dir = kind == EntryType::Directory;
        let kept_dir = self
            .remove_existing(&parent_rel, name, is_dir)
            .map_err(|e| self.io_err(&raw_path, e))?;
        let is_root = self.is_root;

        match kind {
            EntryType::Regular | EntryType::Continuous => {
                let parent = self
                    .dir_fd(parents)
                    .map_err(|e| self.io_err(&raw_path, e))?;
                let fd = openat(
                    &parent,
                    os(name),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| self.io_err(&raw_path, e))?;
                let mut file = File::from(fd);
                let mut buf = std::mem::take(&mut self.buf);
                let copied = copy_with(entry, &mut file, &mut buf);
                self.buf = buf;
                copied.map_err(|e| self.io_err(&raw_path, e))?;
                self.finish_fd(file.as_fd(), &meta, &raw_path)?;
            }
            EntryType::Directory => {
                if !kept_dir {
                    let parent = self
                        .dir_fd(parents)
                        .map_err(|e| self.io_err(&raw_path, e))?;
                    mkdirat(&parent, os(name), Mode::from_bits_truncate(0o700))
                        .map_err(|e| self.io_err(&raw_path, e))?;
                }
                let dir = self
                    .open_in_root(
                        &rel,
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                    )
                    .map_err(|e| self.io_err(&raw_path, e))?;
                if is_root {
                    fchown(
                        &dir,
                        Some(Uid::from_raw(meta.uid as u32)),
                        Some(Gid::from_raw(meta.gid as u32)),
                    )
                    .map_err(|e| self.io_err(&raw_path, e))?;
                }
                self.set_xattrs_fd(dir.as_fd(), &meta, &raw_path)?;
                self.dirs.push(DeferredDir {
                    rel,
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            EntryType::Symlink => {
                let target =
                    raw_link.ok_or_else(|| self.refuse(&raw_path, "symlink without a target"))?;
                if target.is_empty() || target.contains(&0) {
                    return Err(self.refuse(&raw_path, "empty or NUL-containing symlink target"));
                }
                let parent = self
                    .dir_fd(parents)
                    .map_err(|e| self.io_err(&raw_path, e))?;
                symlinkat(os(&target), &parent, os(name)).map_err(|e| self.io_err(&raw_path, e))?;
                self.finish_at(parents, name, &meta, &raw_path, true)?;
            }
            EntryType::Link => {
                let target =
                    raw_link.ok_or_else(|| self.refuse(&raw_path, "hardlink without a target"))?;
                let target_components = clean_path(&target).map_err(|r| {
                    self.refuse(
                        &raw_path,
                        format!(
                            "hardlink target {:?}: {r}",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
                let Some((&target_name, target_parents)) = target_components.split_last() else {
                    return Err(self.refuse(&raw_path, "hardlink to the layer root"));
                };
                let target_parent = self
                    .open_in_root(
                        &target_parents.join(&b'/'),
                        OFlag::O_PATH | OFlag::O_DIRECTORY,
                    )
                    .map_err(|e| {
                        self.refuse(
                            &raw_path,
                            format!(
                                "hardlink target {:?} not in this layer: {e}",
                                String::from_utf8_lossy(&target)
                            ),
                        )
                    })?;
                let parent = self
                    .dir_fd(parents)
                    .map_err(|e| self.io_err(&raw_path, e))?;
                linkat(
                    &target_parent,
                    os(target_name),
                    &parent,
                    os(name),
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    self.refuse(
                        &raw_path,
                        format!(
                            "hardlink target {:?} not in this layer: {e}",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                if sflag != SFlag::S_IFIFO && !is_root {
                    return Err(
                        self.refuse(&raw_path, "device node in layer, and not running as root")
                    );
                }
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                if sflag != SFlag::S_IFIFO {
                    info!(layer = %self.layer, entry = %String::from_utf8_lossy(&raw_path), major, minor, kind = ?kind, "creating device node from layer");
                }
                let parent = self
                    .dir_fd(parents)
                    .map_err(|e| self.io_err(&raw_path, e))?;
                mknodat(
                    &parent,
                    os(name),
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    libc::makedev(major, minor),
                )
                .map_err(|e| self.io_err(&raw_path, e))?;
                self.finish_at(parents, name, &meta, &raw_path, false)?;
            }
            other => {
                return Err(self.refuse(&raw_path, format!("unsupported tar entry type {other:?}")));
            }
        }
        Ok(())
    }

    /// Owner, mode, xattrs, mtime of a regular file open as `fd`.
    fn finish_fd(&self, fd: BorrowedFd<'_>, meta: &EntryMeta, raw_path: &[u8]) -> Result<()> {
        if self.is_root {
            fchown(
                fd,
                Some(Uid::from_raw(meta.uid as u32)),
                Some(Gid::from_raw(meta.gid as u32)),
            )
            .map_err(|e| self.io_err(raw_path, e))?;
        }
        // After chown, which clears setuid/setgid.
        fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(|e| self.io_err(raw_path, e))?;
        self.set_xattrs_fd(fd, meta, raw_path)?;
        let t = TimeSpec::new(meta.mtime, 0);
        futimens(fd, &t, &t).map_err(|e| self.io_err(raw_path, e))
    }

    /// Owner, mode (unless a symlink), xattrs, mtime of `parents/name`.
    fn finish_at(
        &mut self,
        parents: &[&[u8]],
        name: &[u8],
        meta: &EntryMeta,
        raw_path: &[u8],
        symlink: bool,
    ) -> Result<()> {
        let is_root = self.is_root;
        let parent = self.dir_fd(parents).map_err(|e| self.io_err(raw_path, e))?;
        let parent_raw = parent.as_raw_fd();
        if is_root {
            fchownat(
                &parent,
                os(name),
                Some(Uid::from_raw(meta.uid as u32)),
                Some(Gid::from_raw(meta.gid as u32)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.io_err(raw_path, e))?;
        }
        if !symlink {
            let parent = self.dir_fd(parents).map_err(|e| self.io_err(raw_path, e))?;
            // Not a symlink (just created by mknodat), so following is moot.
            nix::sys::stat::fchmodat(
                &parent,
                os(name),
                Mode::from_bits_truncate(meta.mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| self.io_err(raw_path, e))?;
        }
        if !meta.xattrs.is_empty() {
            let path = PathBuf::from(format!("/proc/self/fd/{parent_raw}")).join(os(name));
            for (key, value) in &meta.xattrs {
                if let Err(e) = whiteouts::lsetxattr(&path, key, value) {
                    warn!(layer = %self.layer, entry = %String::from_utf8_lossy(raw_path), xattr = %key, error = %e, "cannot set xattr");
                }
            }
        }
        let parent = self.dir_fd(parents).map_err(|e| self.io_err(raw_path, e))?;
        let t = TimeSpec::new(meta.mtime, 0);
        utimensat(&parent, os(name), &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| self.io_err(raw_path, e))
    }

    fn set_xattrs_fd(&self, fd: BorrowedFd<'_>, meta: &EntryMeta, raw_path: &[u8]) -> Result<()> {
        for (key, value) in &meta.xattrs {
            if let Err(e) = whiteouts::fsetxattr(fd, key, value) {
                // Unprivileged processes cannot set trusted.*/security.*;
                // losing an xattr is not worth failing the pull over.
                warn!(layer = %self.layer, entry = %String::from_utf8_lossy(raw_path), xattr = %key, error = %e, "cannot set xattr");
            }
        }
        Ok(())
    }

    /// Applies directory modes and mtimes, deepest first.
    fn finish_dirs(&mut self) -> Result<()> {
        self.parent_cache = None;
        let dirs = std::mem::take(&mut self.dirs);
        for dir in dirs.iter().rev() {
            let fd = match self.open_in_root(
                &dir.rel,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
            ) {
                Ok(fd) => fd,
                // Replaced by a later entry (a file, a symlink): nothing to do.
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => continue,
                Err(e) => return Err(self.io_err(&dir.rel, e)),
            };
            fchmod(&fd, Mode::from_bits_truncate(dir.mode))
                .map_err(|e| self.io_err(&dir.rel, e))?;
            let t = TimeSpec::new(dir.mtime, 0);
            futimens(&fd, &t, &t).map_err(|e| self.io_err(&dir.rel, e))?;
        }
        Ok(())
    }
}

fn copy_with(reader: &mut impl Read, writer: &mut impl Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_strips_and_refuses() {
        assert_eq!(
            clean_path(b"/etc//passwd").expect("ok"),
            vec![&b"etc"[..], b"passwd"]
        );
        assert_eq!(clean_path(b"./a/./b/").expect("ok"), vec![&b"a"[..], b"b"]);
        assert!(clean_path(b"a/../../b").is_err());
        assert!(clean_path(b"../escape").is_err());
        assert!(clean_path(&vec![b'a'; 300]).is_err());
        assert!(clean_path(&vec![b'a'; 5000]).is_err());
    }
}
