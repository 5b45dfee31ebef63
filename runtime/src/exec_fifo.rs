//! The create → start gate (runc's `exec.fifo` model). `create` makes a fifo in the
//! container's state directory and hands init an `O_PATH` fd to it; when set-up is done
//! init re-opens that fd for writing through `/proc/self/fd/N` (the state directory is
//! not reachable after `pivot_root`), which blocks until `start` opens the fifo for
//! reading. Init then writes one byte and `execve`s the user program; `start` reads the
//! byte and removes the fifo, which is also how the status tells "created" from
//! "running".

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::{FchmodatFlags, Mode, fchmodat};

/// Errors on the exec fifo, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum ExecFifoError {
    /// A syscall on the fifo failed.
    #[error("exec fifo {path}: {op}: {source}")]
    Io {
        /// The fifo path.
        path: PathBuf,
        /// The operation.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// Init failed between its release and the exec (a startContainer hook).
    #[error("container init failed to start the process: {message}")]
    StartFailed {
        /// Init's error.
        message: String,
    },
    /// Init died before it was released.
    #[error("container init (pid {pid}) exited before it could be started")]
    InitGone {
        /// Init's pid.
        pid: i32,
    },
}

fn err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(nix::errno::Errno) -> ExecFifoError + 'a {
    move |e| ExecFifoError::Io {
        path: path.to_owned(),
        op,
        source: e.into(),
    }
}

/// Creates the fifo (mode 0622: init may be running as any uid when it opens it).
pub fn create(path: &Path) -> Result<(), ExecFifoError> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o622)).map_err(err(path, "mkfifo"))?;
    fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        Mode::from_bits_truncate(0o622),
        FchmodatFlags::FollowSymlink,
    )
    .map_err(err(path, "chmod"))
}

/// Opens the fifo `O_PATH` for handing to init.
pub fn open_path(path: &Path) -> Result<OwnedFd, ExecFifoError> {
    open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(err(path, "open O_PATH"))
}

/// Init side: blocks until `start` opens the fifo, runs `before_exec` (the startContainer
/// hooks), then signals `start`: `0` for success, or `E` and the error, which `start`
/// reports. `fifo` is the `O_PATH` fd from [`open_path`].
pub fn wait_for_start(
    fifo: &OwnedFd,
    before_exec: impl FnOnce() -> Result<(), String>,
) -> Result<(), ExecFifoError> {
    let proc_path = PathBuf::from(format!("/proc/self/fd/{}", fifo.as_raw_fd()));
    let fd = loop {
        match open(
            &proc_path,
            OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => break fd,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(err(&proc_path, "open for writing")(e)),
        }
    };
    let mut f = std::fs::File::from(fd);
    let (msg, result) = match before_exec() {
        Ok(()) => (b"0".to_vec(), Ok(())),
        Err(e) => {
            let mut m = format!("E{e}").into_bytes();
            // One write of at most PIPE_BUF bytes arrives in one piece.
            m.truncate(4000);
            (m, Err(ExecFifoError::StartFailed { message: e }))
        }
    };
    f.write_all(&msg).map_err(|source| ExecFifoError::Io {
        path: proc_path,
        op: "write",
        source,
    })?;
    result
}

/// `start` side: releases init and removes the fifo. `init_alive` is polled while
/// waiting so a dead init is reported instead of hanging.
pub fn release(path: &Path, pid: i32, init_alive: impl Fn() -> bool) -> Result<(), ExecFifoError> {
    let fd = open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err(path, "open for reading"))?;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) => {
                if !init_alive() {
                    return Err(ExecFifoError::InitGone { pid });
                }
            }
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(err(path, "poll")(e)),
        }
    }
    let mut buf = [0u8; 4096];
    let mut f = std::fs::File::from(fd);
    let n = f.read(&mut buf).map_err(|source| ExecFifoError::Io {
        path: path.to_owned(),
        op: "read",
        source,
    })?;
    if n == 0 {
        return Err(ExecFifoError::InitGone { pid });
    }
    std::fs::remove_file(path).map_err(|source| ExecFifoError::Io {
        path: path.to_owned(),
        op: "remove",
        source,
    })?;
    match buf[0] {
        b'E' => Err(ExecFifoError::StartFailed {
            message: String::from_utf8_lossy(&buf[1..n]).into_owned(),
        }),
        _ => Ok(()),
    }
}
