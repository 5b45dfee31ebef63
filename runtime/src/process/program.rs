//! Turning a runtime-spec `process` into a ready-to-exec [`Program`], shared by the
//! container's init ([`crate::init`]) and by `exec` ([`crate::process::exec`]). Runs in
//! the forked child, inside the container's namespaces and root. In order:
//!
//! 1. cwd (created if missing for init only; for both, it must resolve inside the
//!    container: CVE-2024-21626)
//! 2. executable lookup in the container's `PATH`, environment
//! 3. rlimits, capability bounding set, fd hygiene
//! 4. seccomp when `noNewPrivileges` is off (installing it then needs `CAP_SYS_ADMIN`)
//! 5. user switch with `PR_SET_KEEPCAPS`, then the other capability sets
//! 6. umask, `noNewPrivileges`, signal mask/dispositions reset
//!
//! [`Program::exec`] installs seccomp (when `noNewPrivileges` is on: as late as possible,
//! like runc) and `execve`s.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use oci_spec::runtime::Process;

use super::capabilities::{CapabilityError, CapabilitySets};
use super::env::{self, EnvError};
use super::fds::{self, FdError};
use super::rlimits::{self, RlimitError};
use super::user::{self, UserError};
use crate::seccomp::{SeccompError, SeccompFilter};

/// A failed process set-up step.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A syscall step without a more specific variant.
    #[error("{step}: {source}")]
    Syscall {
        /// The step.
        step: &'static str,
        /// The underlying error.
        source: Errno,
    },
    /// rlimits.
    #[error(transparent)]
    Rlimit(#[from] RlimitError),
    /// Environment / executable lookup.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// fd hygiene.
    #[error(transparent)]
    Fds(#[from] FdError),
    /// Capabilities.
    #[error(transparent)]
    Capabilities(#[from] CapabilityError),
    /// User switch.
    #[error(transparent)]
    User(#[from] UserError),
    /// Seccomp.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// The working directory.
    #[error("process.cwd: {path}: {source}")]
    Cwd {
        /// The cwd.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn sys(step: &'static str) -> impl FnOnce(Errno) -> ProcessError {
    move |source| ProcessError::Syscall { step, source }
}

/// How the process is prepared.
#[derive(Debug, Clone, Copy)]
pub struct ProcessOptions<'a> {
    /// Create `cwd` if it is missing (init, as runc does; `exec` requires it to exist).
    pub create_cwd: bool,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// The compiled `linux.seccomp` filter.
    pub seccomp: Option<&'a SeccompFilter>,
}

/// A program ready to `execve`.
#[derive(Debug)]
pub struct Program {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    /// The filter still to install right before `execve` (`noNewPrivileges` set).
    late_seccomp: Option<SeccompFilter>,
}

impl Program {
    /// Installs a pending seccomp filter and `execve`s; on failure returns the error
    /// (the caller reports it and exits).
    pub fn exec(self) -> ProcessError {
        if let Some(filter) = &self.late_seccomp {
            if let Err(e) = filter.install() {
                return e.into();
            }
        }
        let err = nix::unistd::execve(&self.path, &self.args, &self.env).unwrap_err();
        ProcessError::Syscall {
            step: "execve",
            source: err,
        }
    }

    /// The resolved executable.
    pub fn path(&self) -> &CString {
        &self.path
    }
}

/// Prepares `process` (see the module docs); the caller then `exec`s the result.
pub fn prepare(process: &Process, opts: ProcessOptions<'_>) -> Result<Program, ProcessError> {
    let cwd = process.cwd();
    let cwd_err = |source| ProcessError::Cwd {
        path: cwd.clone(),
        source,
    };
    if opts.create_cwd {
        std::fs::create_dir_all(cwd).map_err(cwd_err)?;
    }
    std::env::set_current_dir(cwd).map_err(cwd_err)?;
    check_cwd_inside_root(cwd)?;

    let args = process.args().as_deref().unwrap_or(&[]);
    let env_list = process.env().as_deref().unwrap_or(&[]);
    let exe = env::lookup_executable(&args[0], env_list)?;
    let path = CString::new(exe.as_os_str().as_encoded_bytes()).map_err(|_| EnvError::Nul {
        field: "process.args[0]".to_owned(),
    })?;
    let args = env::c_args(args)?;
    let env = env::build_env(env_list, process.user().uid())?;

    rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))?;
    let caps = CapabilitySets::from_spec(process.capabilities().as_ref())?;
    caps.apply_bounding()?;
    fds::prepare_for_exec(opts.preserve_fds)?;

    let nnp = process.no_new_privileges() == Some(true);
    if !nnp {
        if let Some(filter) = opts.seccomp {
            filter.install()?;
        }
    }

    nix::sys::prctl::set_keepcaps(true).map_err(sys("prctl(PR_SET_KEEPCAPS, 1)"))?;
    user::switch(process.user(), user::setgroups_allowed())?;
    nix::sys::prctl::set_keepcaps(false).map_err(sys("prctl(PR_SET_KEEPCAPS, 0)"))?;
    caps.apply_process_sets()?;

    user::apply_umask(process.user());
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(sys("process.noNewPrivileges: prctl"))?;
    }
    reset_signals()?;
    Ok(Program {
        path,
        args,
        env,
        late_seccomp: if nnp { opts.seccomp.cloned() } else { None },
    })
}

/// CVE-2024-21626: a cwd reached through a leaked host fd (`/proc/self/fd/N`) lies
/// outside the process's root; `getcwd` then fails or reports "(unreachable)".
fn check_cwd_inside_root(cwd: &Path) -> Result<(), ProcessError> {
    let outside = |detail: &str| ProcessError::Cwd {
        path: cwd.to_owned(),
        source: std::io::Error::other(format!(
            "the working directory is outside the container's root ({detail})"
        )),
    };
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(p) => Err(outside(&p.to_string_lossy())),
        Err(e) => Err(outside(&e.to_string())),
    }
}

/// Unblocks all signals and restores SIGPIPE's default disposition (the Rust runtime
/// ignores SIGPIPE, and an ignored disposition survives `execve`).
pub fn reset_signals() -> Result<(), ProcessError> {
    // SAFETY: installing SIG_DFL involves no handler code; nothing in the child relies
    // on SIGPIPE being ignored from here on (its remaining writes handle EPIPE as errors).
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map_err(sys("reset SIGPIPE"))?;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(sys("reset signal mask"))
}
