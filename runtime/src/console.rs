//! A terminal for a foreground `run` or `exec` without `--console-socket`, as runc does
//! it: the runtime is its own console socket (one end of a socketpair goes to the
//! container process, which sends the pty master over it, see [`crate::terminal`]), then
//! copies its stdin to the master and the master to its stdout until the process exits,
//! forwarding signals to it and window-size changes (`SIGWINCH`) to the pty. When stdin is
//! a terminal it is put in raw mode for the duration (and the pty gets its size).

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signalfd::SignalFd;
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, socketpair,
};
use nix::sys::termios::{self, SetArg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::signals;
use crate::terminal::{self, TerminalError};

fn sys(step: &'static str) -> impl FnOnce(Errno) -> TerminalError {
    move |source| TerminalError::Sys { step, source }
}

/// The socketpair: `(ours, the container process's)`, both close-on-exec.
pub fn pair() -> Result<(OwnedFd, OwnedFd), TerminalError> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(sys("socketpair for the console"))
}

/// Receives the pty master the container process sent on `ours`.
pub fn receive_master(ours: &OwnedFd) -> Result<OwnedFd, TerminalError> {
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        ours.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("receive the pty master"))?;
    for c in msg.cmsgs().map_err(sys("receive the pty master"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: SCM_RIGHTS just installed this fd in our table; nothing else
                // owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(TerminalError::Usage(
        "the container process sent no pty master",
    ))
}

fn copy_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the live local `ws`.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0 {
        let _ = terminal::set_size(to, ws.ws_row, ws.ws_col);
    }
}

/// Copies between our stdio and `master` until `pid` exits; returns its exit code
/// (`128 + signal` if killed). Signals in [`signals::forwardable`] must be blocked.
pub fn relay(master: OwnedFd, pid: i32) -> Result<i32, TerminalError> {
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        copy_size(stdin.as_fd(), master.as_fd());
    }
    let result = relay_loop(&master, pid);
    if let Some(t) = &saved {
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, t);
    }
    result
}

fn relay_loop(master: &OwnedFd, pid: i32) -> Result<i32, TerminalError> {
    let sigfd = SignalFd::new(&signals::forwardable()).map_err(sys("signalfd"))?;
    let mut master_file =
        std::fs::File::from(master.try_clone().map_err(|e| {
            sys("dup the pty master")(Errno::from_raw(e.raw_os_error().unwrap_or(0)))
        })?);
    let mut stdout = std::io::stdout();
    let mut stdin_open = true;
    let mut master_open = true;
    let mut exit_code = None;
    let mut buf = [0u8; 8192];
    loop {
        if let Some(code) = exit_code {
            if !master_open {
                return Ok(code);
            }
        }
        let stdin = std::io::stdin();
        let mut fds = vec![
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        // Once the process is gone, drain what is left on the master, then stop.
        let timeout = if exit_code.is_some() {
            PollTimeout::from(50u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(exit_code.unwrap_or(0)),
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(sys("poll")(e)),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if master_ready {
            match master_file.read(&mut buf) {
                Ok(0) | Err(_) => master_open = false,
                Ok(n) => {
                    let _ = stdout.write_all(&buf[..n]);
                    let _ = stdout.flush();
                }
            }
        }
        if stdin_ready {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = master_file.write_all(&buf[..n]);
                }
            }
        }
        if sig_ready {
            if let Ok(Some(info)) = sigfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH {
                    copy_size(std::io::stdin().as_fd(), master.as_fd());
                } else if sig != libc::SIGCHLD && sig != libc::SIGURG {
                    let _ = signals::send(pid, sig);
                }
            }
            while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                match status {
                    WaitStatus::Exited(p, code) if p.as_raw() == pid => exit_code = Some(code),
                    WaitStatus::Signaled(p, s, _) if p.as_raw() == pid => {
                        exit_code = Some(128 + s as i32)
                    }
                    WaitStatus::StillAlive => break,
                    _ => {}
                }
            }
        }
    }
}
