//! The library's top-level error: one variant per area (each area's error carries the
//! path, id or field it is about) plus the command-level refusals.

use std::path::PathBuf;

use crate::bundle::BundleError;
use crate::cgroups::CgroupError;
use crate::container_id::ContainerIdError;
use crate::exec_fifo::ExecFifoError;
use crate::signals::SignalError;
use crate::spawn::SpawnError;
use crate::state::{StateError, Status};

/// Any error a command can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid container id.
    #[error(transparent)]
    Id(#[from] ContainerIdError),
    /// State directory problem (includes "container does not exist").
    #[error(transparent)]
    State(#[from] StateError),
    /// Bundle / config.json problem.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Cgroup manager refusal.
    #[error(transparent)]
    Cgroups(#[from] CgroupError),
    /// Container set-up failure.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// Exec fifo failure.
    #[error(transparent)]
    ExecFifo(#[from] ExecFifoError),
    /// Terminal / console socket failure.
    #[error(transparent)]
    Terminal(#[from] crate::terminal::TerminalError),
    /// Seccomp profile failure.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// A hook failed.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// Signal parsing / forwarding failure.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The container is in the wrong state for the command.
    #[error("cannot {action} container {id}: container is {status}")]
    WrongStatus {
        /// What was attempted.
        action: &'static str,
        /// The container id.
        id: String,
        /// Its status.
        status: Status,
    },
    /// `delete` without `--force` on a live container (runc's wording).
    #[error("cannot delete container {id} that is not stopped: {status}")]
    NotStopped {
        /// The container id.
        id: String,
        /// Its status.
        status: Status,
    },
    /// A cgroup command on a container that has no cgroup.
    #[error(
        "cannot {action} container {id}: it has no cgroup (it was created with --cgroup-manager disabled)"
    )]
    NoCgroup {
        /// What was attempted.
        action: &'static str,
        /// The container id.
        id: String,
    },
    /// The command cannot be carried out in the container's state (runc's wording).
    #[error("{reason}")]
    Refused {
        /// Why.
        reason: String,
    },
    /// A bad command-line value.
    #[error("{flag}: {reason}")]
    Usage {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A feature or flag that is not implemented yet.
    #[error("{what} is not supported yet")]
    NotSupported {
        /// What was asked for.
        what: String,
    },
    /// The container did not stop in time.
    #[error("container {id} (pid {pid}) did not exit within {secs}s after SIGKILL")]
    StopTimeout {
        /// The container id.
        id: String,
        /// Init's pid.
        pid: i32,
        /// How long was waited.
        secs: u64,
    },
    /// A signal could not be delivered.
    #[error("send signal {signal} to pid {pid}: {source}")]
    Kill {
        /// The signal number.
        signal: i32,
        /// The target.
        pid: i32,
        /// The underlying error.
        source: nix::errno::Errno,
    },
    /// Any other I/O on a named path.
    #[error("{step} {path}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}
