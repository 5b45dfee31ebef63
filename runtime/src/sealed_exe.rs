//! CVE-2019-5736 defence: the commands that put processes into a container (`create`,
//! `run`, `exec`) first re-execute themselves from a copy of the runtime binary that
//! nothing can write through: a detached read-only bind mount of the binary
//! (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_RDONLY)`, never attached to
//! any mount tree), or, where that is unavailable, a sealed in-memory copy (memfd), which
//! is what runc 1.1 does (`ensure_cloned_binary`). runc 1.2 moved from the memfd to a
//! read-only overlayfs mount of the binary for the same reason as here: the copy costs
//! ~3 ms per command for a 4 MB binary, the mount a few microseconds.
//!
//! Until it `execve`s the user program, a container process (init, an `exec`'d process)
//! is this binary running inside the container; and a container program starting with
//! `#!/proc/self/exe` makes the kernel run it inside the container on purpose. Through
//! `/proc/<pid>/exe` a process in the container could then reopen the binary for
//! writing once the runtime exits, and replace the host's runtime. With the re-exec,
//! `/proc/<pid>/exe` resolves through a read-only mount (reopening it for writing is
//! `EROFS`), or to a memfd sealed against writes, growth, shrinking and unsealing:
//! there is no writable path from the container to the host's file.
//!
//! Cost: one extra `execve` (plus, for the memfd fallback, a copy of the binary). A
//! binary already on a read-only mount, or already a sealed memfd, is not re-executed, so
//! this happens once per command.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};

/// A failed step of the re-exec.
#[derive(Debug, thiserror::Error)]
#[error("re-exec from a sealed copy of the runtime (CVE-2019-5736 defence): {step}: {source}")]
pub struct SealedExeError {
    /// The step.
    pub step: &'static str,
    /// The underlying error.
    pub source: std::io::Error,
}

fn err(step: &'static str) -> impl FnOnce(std::io::Error) -> SealedExeError {
    move |source| SealedExeError { step, source }
}

const SEALS: SealFlag = SealFlag::F_SEAL_SEAL
    .union(SealFlag::F_SEAL_SHRINK)
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE);

/// Whether `fd` is a memfd carrying all of [`SEALS`].
fn is_sealed(fd: &File) -> bool {
    fcntl(fd.as_fd(), FcntlArg::F_GET_SEALS)
        .is_ok_and(|s| SealFlag::from_bits_truncate(s).contains(SEALS))
}

/// Whether `fd` is on a read-only mount (or file system).
fn is_read_only(fd: &File) -> bool {
    nix::sys::statvfs::fstatvfs(fd)
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Whether this process runs from a binary nothing can write through.
pub fn running_protected() -> bool {
    File::open("/proc/self/exe").is_ok_and(|f| is_sealed(&f) || is_read_only(&f))
}

/// `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// An `O_PATH` fd of the binary on a detached, read-only bind mount of it.
fn read_only_clone() -> std::io::Result<OwnedFd> {
    // SAFETY: open_tree with a NUL-terminated path and valid flags returns a new fd
    // (owned from here on) or -1.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new fd nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a live, correctly laid out mount_attr whose size is passed; the
    // path is an empty NUL-terminated string with AT_EMPTY_PATH, naming `tree` itself.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(&tree),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(tree)
}

/// Returns if the runtime already runs from a protected binary; otherwise re-`execve`s
/// itself from one with the same arguments and environment (and never returns).
pub fn ensure_sealed() -> Result<(), SealedExeError> {
    let mut exe = File::open("/proc/self/exe").map_err(err("open /proc/self/exe"))?;
    if is_sealed(&exe) || is_read_only(&exe) {
        return Ok(());
    }
    let (args, env) = args_and_env()?;
    match read_only_clone() {
        Ok(tree) => {
            let e: Errno = nix::unistd::fexecve(tree.as_fd(), &args, &env).unwrap_err();
            tracing::debug!(error = %e, "exec from a read-only bind mount failed; using a sealed copy");
        }
        Err(e) => {
            tracing::debug!(error = %e, "read-only bind mount of the runtime unavailable; using a sealed copy");
        }
    }
    // SAFETY: memfd_create with a NUL-terminated name and valid flags returns a new fd
    // (owned from here on) or -1.
    let raw = unsafe {
        libc::memfd_create(
            c"berth-runtime".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if raw < 0 {
        return Err(err("memfd_create")(std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` was just created and nothing else owns it.
    let mut copy = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    std::io::copy(&mut exe, &mut copy).map_err(err("copy /proc/self/exe"))?;
    fcntl(copy.as_fd(), FcntlArg::F_ADD_SEALS(SEALS))
        .map_err(|e| err("seal the copy")(e.into()))?;
    drop(exe);
    let e: Errno = nix::unistd::fexecve(copy.as_fd(), &args, &env).unwrap_err();
    Err(err("fexecve")(e.into()))
}

type ArgsAndEnv = (Vec<CString>, Vec<CString>);

fn args_and_env() -> Result<ArgsAndEnv, SealedExeError> {
    let cstrings = |items: Vec<Vec<u8>>| -> Result<Vec<CString>, SealedExeError> {
        items
            .into_iter()
            .map(|b| CString::new(b).map_err(|e| err("argument with a NUL byte")(e.into())))
            .collect()
    };
    let args = cstrings(std::env::args_os().map(|a| a.as_bytes().to_vec()).collect())?;
    let env = cstrings(
        std::env::vars_os()
            .map(|(k, v)| {
                let mut e = k.as_bytes().to_vec();
                e.push(b'=');
                e.extend_from_slice(v.as_bytes());
                e
            })
            .collect(),
    )?;
    Ok((args, env))
}
