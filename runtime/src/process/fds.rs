//! File-descriptor hygiene before `execve` (CVE-2024-21626: a leaked host fd lets the
//! container escape): every fd above 2 is made close-on-exec, except the
//! `--preserve-fds` range `3..3+N`, which is made inheritable. The runtime's own fds
//! (sync socket, exec fifo) are already close-on-exec and vanish at `execve`.

use std::os::fd::RawFd;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};

/// A failed fd operation.
#[derive(Debug, thiserror::Error)]
#[error("fd hygiene: {step} (fd {fd}): {source}")]
pub struct FdError {
    /// The operation.
    pub step: &'static str,
    /// The fd.
    pub fd: RawFd,
    /// The underlying error.
    pub source: nix::errno::Errno,
}

/// Marks every fd ≥ `3 + preserve` close-on-exec and clears close-on-exec on the
/// preserved ones.
pub fn prepare_for_exec(preserve: u32) -> Result<(), FdError> {
    let first_closed = 3 + preserve;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on fds in the range;
    // it does not close or invalidate any fd this process still uses.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first_closed,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        return Err(FdError {
            step: "close_range(CLOSE_RANGE_CLOEXEC)",
            fd: first_closed as RawFd,
            source: nix::errno::Errno::last(),
        });
    }
    for fd in 3..first_closed as RawFd {
        // SAFETY: the caller passed this fd to the runtime to hand to the container;
        // borrowing it for one fcntl does not transfer or close it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|source| FdError {
            step: "clear FD_CLOEXEC on preserved fd",
            fd,
            source,
        })?;
    }
    Ok(())
}
