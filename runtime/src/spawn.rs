//! The fork sequence and the parent half of the set-up protocol ([`crate::sync`]).
//!
//! ```text
//! create ──fork──▶ stage-1: enter namespaces (user ns handshake with the parent),
//!                           unshare the new ones, fork init, report its pid, exit
//!                     └──fork──▶ init (pid 1 of the new pid ns): see crate::init
//! ```
//!
//! The extra stage exists because `CLONE_NEWPID` (and `setns` into a pid or time
//! namespace) only affects children of the caller. Stage-1 exits right away, so init is
//! re-parented to the caller's subreaper (the foreground `run`) or to the system init,
//! and survives `create` exiting. The runtime is single-threaded (no async runtime), so
//! forking and running Rust code in the children is sound.
//!
//! On any failure the parent kills what it spawned and reaps what is its child, so a
//! failed `create` leaves no process behind.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork};

use crate::bundle::Bundle;
use crate::cgroups::{Cgroup, CgroupError};
use crate::container_id::ContainerId;
use crate::hooks::{self, HookKind, HookState};
use crate::init::{self, InitContext};
use crate::namespaces::{self, NamespaceError, NamespacePlan};
use crate::seccomp::SeccompFilter;
use crate::sync::{self, SyncError, SyncMessage, SyncSocket};

/// Errors while spawning the container's init.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// fork failed.
    #[error("fork {stage}: {source}")]
    Fork {
        /// Which fork.
        stage: &'static str,
        /// The underlying error.
        source: Errno,
    },
    /// The sync protocol failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The parent's part of the user-namespace set-up failed.
    #[error(transparent)]
    Namespaces(#[from] NamespaceError),
    /// A child reported an error.
    #[error("container setup failed: {message}")]
    Child {
        /// The child's error.
        message: String,
    },
    /// A child died without reporting.
    #[error("container setup failed: the setup process exited without reporting an error")]
    ChildDied,
    /// A message arrived out of order.
    #[error("container setup failed: unexpected message {0:?}")]
    Protocol(SyncMessage),
    /// The container's cgroup.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A prestart or createRuntime hook failed.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// Making a runtime fd safe from `--preserve-fds` failed.
    #[error("duplicate runtime fd above the preserved range: {0}")]
    Dup(Errno),
}

/// What `create` asks for.
#[derive(Debug)]
pub struct SpawnRequest<'a> {
    /// The container id.
    pub id: &'a ContainerId,
    /// The loaded bundle.
    pub bundle: &'a Bundle,
    /// `O_PATH` fd of the exec fifo.
    pub exec_fifo: &'a OwnedFd,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--no-new-keyring`.
    pub no_new_keyring: bool,
    /// The container's cgroup: stage-1 joins it first thing, so init and everything it
    /// forks are in it, and a new cgroup namespace is rooted at it.
    pub cgroup: Option<&'a Cgroup>,
    /// The connected `--console-socket` (with `process.terminal`).
    pub console_socket: Option<&'a OwnedFd>,
    /// The compiled `linux.seccomp` filter.
    pub seccomp: Option<&'a SeccompFilter>,
}

/// Exits the current (forked) process immediately, without running atexit handlers or
/// flushing stdio buffers that belong to the parent's copy of the address space.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only terminates the calling process; it never returns.
    unsafe { libc::_exit(code) }
}

/// Duplicates `fd` to a number ≥ `min` (close-on-exec), so it cannot fall inside the
/// `--preserve-fds` range and be handed to the container.
pub fn move_above(fd: OwnedFd, min: i32) -> Result<OwnedFd, SpawnError> {
    use std::os::fd::AsRawFd;
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    let raw = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(min))
        .map_err(SpawnError::Dup)?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

/// Creates the sync socket pair (both ends moved above the `--preserve-fds` range) and
/// forks stage-1, which runs `child` with its end; returns the parent's end and
/// stage-1's pid. `child` must end the process (it never returns in practice). Shared
/// by `create` and `exec`.
pub(crate) fn fork_stage1(
    preserve_fds: u32,
    stage: &'static str,
    child: impl FnOnce(SyncSocket),
) -> Result<(SyncSocket, Pid), SpawnError> {
    let min_fd = 3 + preserve_fds as i32;
    let (parent_end, child_end) = sync::pair()?;
    let parent_end = SyncSocket::from_fd(move_above(parent_end.into_fd(), min_fd)?);
    let child_end = SyncSocket::from_fd(move_above(child_end.into_fd(), min_fd)?);

    // SAFETY: the runtime is single-threaded (no thread or async runtime is started
    // before create or exec), so the child's copy of the address space is consistent.
    match unsafe { fork() } {
        Err(source) => Err(SpawnError::Fork { stage, source }),
        Ok(ForkResult::Child) => {
            drop(parent_end);
            child(child_end);
            // `child` ends the process itself; never fall back into the parent's code.
            exit_now(1)
        }
        Ok(ForkResult::Parent { child }) => Ok((parent_end, child)),
    }
}

/// Forks stage-1 and init, runs the parent side of the protocol, and returns init's pid
/// once init reports `Ready`.
pub fn spawn(req: &SpawnRequest<'_>) -> Result<i32, SpawnError> {
    let plan = NamespacePlan::from_spec(&req.bundle.spec);
    let (parent_end, stage1) = fork_stage1(req.preserve_fds, "stage-1", |sock| {
        stage1_main(req, &plan, sock)
    })?;

    let mut init_pid: Option<i32> = None;
    let mut stage1_reaped = false;
    let result = drive_parent(req, &parent_end, stage1, &mut init_pid, &mut stage1_reaped);
    if result.is_err() {
        if let Some(pid) = init_pid {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if !stage1_reaped {
            let _ = kill(stage1, Signal::SIGKILL);
            let _ = waitpid(stage1, None);
        }
        if let Some(pid) = init_pid {
            // Reaps init if this process is its subreaper (foreground run); ECHILD otherwise.
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
    result
}

fn drive_parent(
    req: &SpawnRequest<'_>,
    sock: &SyncSocket,
    stage1: Pid,
    init_pid: &mut Option<i32>,
    stage1_reaped: &mut bool,
) -> Result<i32, SpawnError> {
    loop {
        let msg = match sock.recv() {
            Ok(m) => m,
            Err(SyncError::Closed) => return Err(SpawnError::ChildDied),
            Err(e) => return Err(e.into()),
        };
        match msg {
            SyncMessage::UserNsCreated => {
                namespaces::write_id_mappings(stage1.as_raw(), &req.bundle.spec)?;
                sock.send(&SyncMessage::MappingsWritten)?;
            }
            SyncMessage::InitPid { pid } => {
                *init_pid = Some(pid);
                let _ = waitpid(stage1, None);
                *stage1_reaped = true;
                tracing::debug!(pid, "container init forked");
                sock.send(&SyncMessage::Proceed { pid })?;
            }
            SyncMessage::RunHooks => {
                let pid = init_pid.ok_or(SpawnError::Protocol(SyncMessage::RunHooks))?;
                let state = HookState::for_bundle(req.id.as_str(), req.bundle, "creating", pid);
                let hooks = req.bundle.spec.hooks().as_ref();
                hooks::run(HookKind::Prestart, hooks, &state)?;
                hooks::run(HookKind::CreateRuntime, hooks, &state)?;
                sock.send(&SyncMessage::HooksDone)?;
            }
            SyncMessage::Ready => {
                return init_pid.ok_or(SpawnError::Protocol(SyncMessage::Ready));
            }
            SyncMessage::Error { message } => return Err(SpawnError::Child { message }),
            other => return Err(SpawnError::Protocol(other)),
        }
    }
}

fn stage1_main(req: &SpawnRequest<'_>, plan: &NamespacePlan, sock: SyncSocket) -> ! {
    if let Some(cg) = req.cgroup {
        if let Err(e) = cg.join_self() {
            let _ = sock.send(&SyncMessage::Error {
                message: format!("join the container's cgroup: {e}"),
            });
            exit_now(1);
        }
    }
    if let Err(e) = plan.enter(&sock) {
        let _ = sock.send(&SyncMessage::Error {
            message: e.to_string(),
        });
        exit_now(1);
    }
    // SAFETY: still single-threaded (this is the forked stage-1).
    match unsafe { fork() } {
        Err(e) => {
            let _ = sock.send(&SyncMessage::Error {
                message: format!("fork init: {e}"),
            });
            exit_now(1);
        }
        Ok(ForkResult::Child) => {
            let ctx = InitContext {
                id: req.id,
                bundle: req.bundle,
                plan,
                exec_fifo: req.exec_fifo,
                preserve_fds: req.preserve_fds,
                no_pivot: req.no_pivot,
                no_new_keyring: req.no_new_keyring,
                cgroup_dir: req.cgroup.map(Cgroup::dir),
                console_socket: req.console_socket,
                seccomp: req.seccomp,
            };
            init::run(&ctx, sock);
        }
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
