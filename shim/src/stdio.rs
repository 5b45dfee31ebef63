//! A process's stdio from containerd's fifo paths.
//!
//! - stdout / stderr: the fifo (or file) itself becomes the process's fd 1 / 2, opened
//!   `O_RDWR` so the open never blocks and a container writing while containerd is away
//!   (restarting) does not get `EPIPE`; the shim keeps no copy, so containerd sees EOF
//!   when the container's last writer exits. `file:///path` appends to a file; an empty
//!   path is `/dev/null`.
//! - stdin: a pipe; a pump thread copies the fifo into it, so CloseIO can close the
//!   container's stdin (drain what is buffered, then drop the write end) even though
//!   containerd keeps its fifo open.
//! - terminal: the runtime's `--console-socket`; the pty master arrives over it
//!   (`SCM_RIGHTS`), pumps copy stdin fifo → master and master → stdout fifo, and
//!   ResizePty sets the master's window size.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// Opens an output path (see the module doc).
pub fn open_output(path: &str) -> io::Result<File> {
    if path.is_empty() {
        return OpenOptions::new().write(true).open("/dev/null");
    }
    if let Some(p) = path.strip_prefix("file://") {
        if let Some(dir) = Path::new(p).parent() {
            std::fs::create_dir_all(dir)?;
        }
        return OpenOptions::new().append(true).create(true).open(p);
    }
    if path.contains("://") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("stdio URI {path:?} not supported (only fifo paths and file://)"),
        ));
    }
    OpenOptions::new().read(true).write(true).open(path)
}

fn open_stdin_fifo(path: &str) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// The write side of a stdin pump: CloseIO calls [`StdinPump::close`].
pub struct StdinPump {
    wake: File,
}

impl StdinPump {
    /// Drains what the fifo holds, then closes the process's stdin.
    pub fn close(&self) {
        let _ = (&self.wake).write_all(b"x");
    }
}

/// Copies the fifo at `path` into `dest` until [`StdinPump::close`] (or `dest` breaks).
pub fn pump_stdin(path: &str, dest: File) -> io::Result<StdinPump> {
    let fifo = open_stdin_fifo(path)?;
    let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    std::thread::Builder::new()
        .name("stdin".into())
        .stack_size(64 * 1024)
        .spawn(move || stdin_loop(fifo, wake_r, dest))?;
    Ok(StdinPump {
        wake: File::from(wake_w),
    })
}

fn stdin_loop(mut fifo: File, wake: OwnedFd, mut dest: File) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let (fifo_ready, closing) = {
            let mut fds = [
                PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                PollFd::new(wake.as_fd(), PollFlags::POLLIN),
            ];
            if poll(&mut fds, PollTimeout::NONE).is_err() {
                continue;
            }
            let r = |f: &PollFd| f.revents().is_some_and(|e| !e.is_empty());
            (r(&fds[0]), r(&fds[1]))
        };
        if fifo_ready || closing {
            // Drain what is there (non-blocking fifo).
            loop {
                match fifo.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if dest.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        if closing {
            return;
        }
    }
}

/// A temporary console socket: the runtime connects and sends the pty master.
pub struct ConsoleSocket {
    listener: UnixListener,
    dir: PathBuf,
    /// The socket path for `--console-socket`.
    pub path: PathBuf,
}

impl ConsoleSocket {
    /// Creates `/tmp/berth-shim-pty-<pid>-<n>/pty.sock` (a short path: bundle paths can
    /// exceed `sun_path`).
    pub fn new() -> io::Result<ConsoleSocket> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-shim-pty-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("pty.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(ConsoleSocket {
            listener,
            dir,
            path,
        })
    }

    /// Receives the master (after the runtime returned: the connection waits in the
    /// backlog), without blocking forever.
    pub fn receive(&self) -> io::Result<File> {
        self.listener.set_nonblocking(true)?;
        let mut tries = 0;
        let (conn, _) = loop {
            match self.listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("the runtime sent no console: {e}"),
                    ));
                }
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut data = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut data)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 2]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                let mut it = fds.into_iter();
                if let Some(fd) = it.next() {
                    for extra in it {
                        let _ = nix::unistd::close(extra);
                    }
                    // SAFETY: the kernel just installed this fd in our table for us
                    // (SCM_RIGHTS); nothing else owns it.
                    return Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
                }
            }
        }
        Err(io::Error::other("console socket message carried no fd"))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies the pty master to the stdout path.
pub fn pump_console_output(master: Arc<File>, stdout: File) -> io::Result<()> {
    std::thread::Builder::new()
        .name("console".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut out = stdout;
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match (&*master).read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if out.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return, // EIO: every slave fd closed
                }
            }
        })?;
    Ok(())
}

/// Sets the pty's window size.
pub fn resize(master: &File, width: u32, height: u32) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: height as u16,
        ws_col: width as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `winsize` from the pointer, which is valid for the call.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
