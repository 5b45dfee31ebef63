//! The fork sequence of `exec`: a new process inside an existing container.
//!
//! ```text
//! exec ──fork──▶ stage-1: join the container's cgroup, setns into every namespace of
//!                         the container's init that differs from ours (user first,
//!                         mount last), fork, report the child's pid, exit
//!                   └──fork──▶ process: setsid, terminal, process spec applied
//!                               (crate::process::program), execve
//! ```
//!
//! The extra fork is needed because `setns` into a pid (or time) namespace only applies
//! to children. The child reports a set-up error over the sync socket; a successful
//! `execve` closes its end (close-on-exec), which the parent reads as success.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::Process;

use super::program::{self, ProcessOptions};
use crate::seccomp::SeccompFilter;
use crate::spawn::{SpawnError, exit_now, fork_stage1};
use crate::sync::{SyncError, SyncMessage, SyncSocket};
use crate::terminal::{self, PtySetup};

/// What `exec` asks for.
#[derive(Debug)]
pub struct ExecRequest<'a> {
    /// Host pid of the container's init (whose namespaces are joined).
    pub init_pid: i32,
    /// The process to run.
    pub process: &'a Process,
    /// The cgroup directory to join (`None`: cgroups disabled).
    pub cgroup_dir: Option<&'a Path>,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// The connected `--console-socket` (with `--tty`).
    pub console_socket: Option<&'a OwnedFd>,
    /// The container's compiled `linux.seccomp` filter.
    pub seccomp: Option<&'a SeccompFilter>,
}

/// Namespace files in join order: user first (it grants the capabilities to join the
/// others), mount last (it changes how `/proc` paths resolve).
const NAMESPACES: &[(&str, CloneFlags)] = &[
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Starts the process; returns its host pid once it has `execve`d.
pub fn spawn(req: &ExecRequest<'_>) -> Result<i32, SpawnError> {
    let (parent_end, stage1) = fork_stage1(req.preserve_fds, "exec stage-1", |sock| {
        stage1_main(req, sock)
    })?;

    let mut pid = None;
    let result = (|| {
        match parent_end.recv() {
            Ok(SyncMessage::InitPid { pid: p }) => pid = Some(p),
            Ok(SyncMessage::Error { message }) => return Err(SpawnError::Child { message }),
            Ok(other) => return Err(SpawnError::Protocol(other)),
            Err(SyncError::Closed) => return Err(SpawnError::ChildDied),
            Err(e) => return Err(e.into()),
        }
        let _ = waitpid(stage1, None);
        match parent_end.recv() {
            // The process's end closed at execve.
            Err(SyncError::Closed) => Ok(pid.unwrap_or_default()),
            Ok(SyncMessage::Error { message }) => Err(SpawnError::Child { message }),
            Ok(other) => Err(SpawnError::Protocol(other)),
            Err(e) => Err(e.into()),
        }
    })();
    if result.is_err() {
        if let Some(p) = pid {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            // Reaps it if this process is its subreaper (foreground exec).
            let _ = waitpid(Pid::from_raw(p), None);
        }
        let _ = kill(stage1, Signal::SIGKILL);
        let _ = waitpid(stage1, None);
    }
    result
}

fn fail(sock: &SyncSocket, message: String) -> ! {
    let _ = sock.send(&SyncMessage::Error { message });
    exit_now(1);
}

fn stage1_main(req: &ExecRequest<'_>, sock: SyncSocket) -> ! {
    if let Some(dir) = req.cgroup_dir {
        let procs = dir.join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, "0") {
            fail(
                &sock,
                format!("join the container's cgroup ({}): {e}", procs.display()),
            );
        }
    }
    if let Err(message) = join_namespaces(req.init_pid) {
        fail(&sock, message);
    }
    // SAFETY: still single-threaded (this is the forked stage-1).
    match unsafe { fork() } {
        Err(e) => fail(&sock, format!("fork the exec process: {e}")),
        Ok(ForkResult::Child) => child_main(req, &sock),
        Ok(ForkResult::Parent { child }) => {
            let code = match sock.send(&SyncMessage::InitPid {
                pid: child.as_raw(),
            }) {
                Ok(()) => 0,
                Err(_) => {
                    let _ = kill(child, Signal::SIGKILL);
                    1
                }
            };
            exit_now(code);
        }
    }
}

/// Opens every namespace of `pid` that differs from ours, then joins them in order.
fn join_namespaces(pid: i32) -> Result<(), String> {
    let mut fds: Vec<(PathBuf, CloneFlags, OwnedFd)> = Vec::new();
    for (name, flag) in NAMESPACES {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let ours = PathBuf::from(format!("/proc/self/ns/{name}"));
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            // The kernel lacks this namespace type (e.g. time before 5.6).
            if Path::new(&format!("/proc/self/ns/{name}")).exists() {
                return Err(format!(
                    "open {}: the container's init is gone",
                    theirs.display()
                ));
            }
            continue;
        };
        if a.dev() == b.dev() && a.ino() == b.ino() {
            continue;
        }
        let fd = open(&theirs, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| format!("open namespace {}: {e}", theirs.display()))?;
        fds.push((theirs, *flag, fd));
    }
    for (path, flag, fd) in &fds {
        setns(fd.as_fd(), *flag).map_err(|e| format!("join namespace {}: {e}", path.display()))?;
    }
    Ok(())
}

fn child_main(req: &ExecRequest<'_>, sock: &SyncSocket) -> ! {
    let program = (|| -> Result<program::Program, String> {
        nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
        if let Some(socket) = req.console_socket {
            terminal::setup(PtySetup {
                socket,
                mount_console: false,
                size: crate::init::console_size(req.process),
                uid: req.process.user().uid(),
            })
            .map_err(|e| e.to_string())?;
        }
        program::prepare(
            req.process,
            ProcessOptions {
                create_cwd: false,
                preserve_fds: req.preserve_fds,
                seccomp: req.seccomp,
            },
        )
        .map_err(|e| e.to_string())
    })();
    match program {
        Ok(p) => {
            let path = p.path().clone();
            let err = p.exec();
            fail(sock, format!("exec {path:?}: {err}"));
        }
        Err(message) => fail(sock, message),
    }
}
