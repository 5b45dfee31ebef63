//! `process.terminal` with `--console-socket` (runc's protocol): the runtime connects to
//! the caller's unix socket before forking; the container process, once inside the
//! container's root (after `pivot_root`, so the pty comes from the container's own
//! devpts instance), opens `/dev/ptmx`, sends the master fd over the socket in one
//! `sendmsg` with `SCM_RIGHTS` (payload: the master's name, `/dev/ptmx`, as runc's
//! `utils.SendFd(socket, pty.Name(), pty.Fd())`), makes the slave its stdin, stdout and
//! stderr and its controlling terminal (the process is a session leader: `setsid` ran
//! earlier), and owns it as the process's user so it can control it. Init also
//! bind-mounts the slave onto `/dev/console`, like runc.
//!
//! runc's rules for the command line ([`check_flags`]): a detached process with a
//! terminal needs `--console-socket`, and `--console-socket` without a terminal (or in the
//! foreground) is refused. A foreground process with a terminal gets the runtime itself
//! as its console ([`crate::console`]).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::sys::stat::Mode;
use nix::unistd::{Uid, dup2_stderr, dup2_stdin, dup2_stdout, fchown};

/// A terminal set-up error.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// A syscall failed.
    #[error("terminal: {step}: {source}")]
    Sys {
        /// The step.
        step: &'static str,
        /// The underlying error.
        source: Errno,
    },
    /// Connecting to the console socket failed.
    #[error("--console-socket {path}: connect: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The flags do not fit together (runc's messages).
    #[error("{0}")]
    Usage(&'static str),
}

fn sys(step: &'static str) -> impl FnOnce(Errno) -> TerminalError {
    move |source| TerminalError::Sys { step, source }
}

/// runc's `checkTerminal`: `detach` is true for `create` and for `--detach`.
pub fn check_flags(
    terminal: bool,
    detach: bool,
    console_socket: Option<&Path>,
) -> Result<(), TerminalError> {
    if detach && terminal && console_socket.is_none() {
        return Err(TerminalError::Usage(
            "cannot allocate tty if runc will detach without setting console socket",
        ));
    }
    if (!detach || !terminal) && console_socket.is_some() {
        return Err(TerminalError::Usage(
            "cannot use console socket if runc will not detach or allocate tty",
        ));
    }
    Ok(())
}

/// Connects to the caller's console socket (in the runtime, before forking).
pub fn connect(path: &Path) -> Result<OwnedFd, TerminalError> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|source| TerminalError::Connect {
            path: path.to_owned(),
            source,
        })
}

/// What the container process needs to set its terminal up.
#[derive(Debug, Clone, Copy)]
pub struct PtySetup<'a> {
    /// The connected console socket.
    pub socket: &'a OwnedFd,
    /// Bind-mount the slave onto `/dev/console` (init only).
    pub mount_console: bool,
    /// `process.consoleSize` (height, width).
    pub size: Option<(u16, u16)>,
    /// The uid the process will run as (owner of the slave).
    pub uid: u32,
}

/// In the container process (a session leader, inside the container's root): creates
/// the pty, sends the master, and makes the slave the stdio and controlling terminal.
pub fn setup(p: PtySetup<'_>) -> Result<(), TerminalError> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("open /dev/ptmx"))?;
    grantpt(&master).map_err(sys("grantpt"))?;
    unlockpt(&master).map_err(sys("unlockpt"))?;
    let slave_path = ptsname_r(&master).map_err(sys("ptsname"))?;
    if let Some((rows, cols)) = p.size {
        set_size(master.as_fd(), rows, cols)?;
    }
    let slave = open(
        slave_path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open the pty slave"))?;
    if p.mount_console {
        mount_console(&slave_path)?;
    }
    send_fd(p.socket, master.as_raw_fd(), b"/dev/ptmx")?;
    drop(master);
    fchown(&slave, Some(Uid::from_raw(p.uid)), None).map_err(sys("chown the pty slave"))?;
    dup2_stdin(&slave).map_err(sys("dup the pty slave to stdin"))?;
    dup2_stdout(&slave).map_err(sys("dup the pty slave to stdout"))?;
    dup2_stderr(&slave).map_err(sys("dup the pty slave to stderr"))?;
    drop(slave);
    // SAFETY: TIOCSCTTY on fd 0 takes an int argument (0: do not steal); no memory is
    // passed to the kernel.
    let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    if rc != 0 {
        return Err(TerminalError::Sys {
            step: "make the pty the controlling terminal (TIOCSCTTY)",
            source: Errno::last(),
        });
    }
    Ok(())
}

/// Sets the window size of a terminal.
pub fn set_size(
    fd: std::os::fd::BorrowedFd<'_>,
    rows: u16,
    cols: u16,
) -> Result<(), TerminalError> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which points to a live
    // local for the duration of the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc != 0 {
        return Err(TerminalError::Sys {
            step: "set the window size (TIOCSWINSZ)",
            source: Errno::last(),
        });
    }
    Ok(())
}

/// Sends `fd` with `payload` in one message (runc's `utils.SendFd`).
pub fn send_fd(socket: &OwnedFd, fd: i32, payload: &[u8]) -> Result<(), TerminalError> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(payload)];
    loop {
        match sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("send the pty master over the console socket")(e)),
        }
    }
}

fn mount_console(slave_path: &str) -> Result<(), TerminalError> {
    let console = Path::new("/dev/console");
    if std::fs::symlink_metadata(console).is_err() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(console)
            .map_err(|e| {
                sys("create /dev/console")(Errno::from_raw(e.raw_os_error().unwrap_or(0)))
            })?;
    }
    mount(
        Some(slave_path),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys("bind-mount the pty slave onto /dev/console"))
}
