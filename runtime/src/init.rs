//! The container's init: the in-container setup sequence, in order, ending in `execve`.
//! Runs in the process forked by stage-1 (see [`crate::spawn`]), already inside the new
//! namespaces (pid 1 of a new pid namespace). Each step's error names the step and the
//! path or field; it is sent to the waiting `create` over the sync socket and init exits.
//!
//! 1. `setsid`, wait for the parent's `Proceed`
//! 2. session keyring, `oomScoreAdj`
//! 3. rootfs: propagation, mounts, devices, `pivot_root` ([`crate::rootfs::prepare`])
//! 4. hostname, domainname, sysctls
//! 5. read-only and masked paths, read-only root ([`crate::rootfs::finish`])
//! 6. cwd (created if missing), executable lookup in the container's `PATH`, environment
//! 7. rlimits, capability bounding set, fd hygiene
//! 8. user switch with `PR_SET_KEEPCAPS`, then the other capability sets
//! 9. umask, `noNewPrivileges`, signal mask/dispositions reset
//! 10. `Ready` → parent; block on the exec fifo until `start`; `execve`

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::stat::{Mode, umask};

use crate::bundle::Bundle;
use crate::container_id::ContainerId;
use crate::exec_fifo::{self, ExecFifoError};
use crate::kernel_params::{self, KernelParamError};
use crate::namespaces::NamespacePlan;
use crate::process::capabilities::{CapabilityError, CapabilitySets};
use crate::process::env::{self, EnvError};
use crate::process::fds::{self, FdError};
use crate::process::rlimits::{self, RlimitError};
use crate::process::user::{self, UserError};
use crate::rootfs::{self, CgroupMount, RootfsError, RootfsOptions};
use crate::sync::{SyncError, SyncMessage, SyncSocket};

/// A failed init step.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A syscall step without a more specific variant.
    #[error("{step}: {source}")]
    Syscall {
        /// The step.
        step: &'static str,
        /// The underlying error.
        source: Errno,
    },
    /// The sync protocol failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The parent sent something unexpected.
    #[error("unexpected message from the runtime: {0:?}")]
    Protocol(SyncMessage),
    /// Hostname, sysctl, oom_score_adj or keyring.
    #[error(transparent)]
    KernelParam(#[from] KernelParamError),
    /// Rootfs set-up.
    #[error("rootfs: {0}")]
    Rootfs(#[from] RootfsError),
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
    /// The working directory.
    #[error("process.cwd: {path}: {source}")]
    Cwd {
        /// The cwd.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The exec fifo.
    #[error(transparent)]
    ExecFifo(#[from] ExecFifoError),
}

fn sys(step: &'static str) -> impl FnOnce(Errno) -> InitError {
    move |source| InitError::Syscall { step, source }
}

/// What init needs, borrowed from the `create` that forked it.
#[derive(Debug)]
pub struct InitContext<'a> {
    /// The container id (for the keyring name).
    pub id: &'a ContainerId,
    /// The bundle.
    pub bundle: &'a Bundle,
    /// The namespace plan stage-1 executed.
    pub plan: &'a NamespacePlan,
    /// `O_PATH` fd of the exec fifo.
    pub exec_fifo: &'a OwnedFd,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--no-new-keyring`.
    pub no_new_keyring: bool,
    /// The container's cgroup directory on the host (`None`: cgroups disabled).
    pub cgroup_dir: Option<&'a Path>,
}

/// The program init will exec.
struct Program {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

/// Runs init; never returns.
pub fn run(ctx: &InitContext<'_>, sync: SyncSocket) -> ! {
    let program = match setup(ctx, &sync) {
        Ok(p) => p,
        Err(e) => {
            let _ = sync.send(&SyncMessage::Error {
                message: e.to_string(),
            });
            crate::spawn::exit_now(1);
        }
    };
    if let Err(e) = sync.send(&SyncMessage::Ready) {
        eprintln!("berth-runtime init: {e}");
        crate::spawn::exit_now(1);
    }
    drop(sync);
    if let Err(e) = exec_fifo::wait_for_start(ctx.exec_fifo) {
        eprintln!("berth-runtime init: {e}");
        crate::spawn::exit_now(1);
    }
    let err = nix::unistd::execve(&program.path, &program.args, &program.env).unwrap_err();
    eprintln!("berth-runtime init: exec {:?}: {err}", program.path);
    crate::spawn::exit_now(127);
}

fn setup(ctx: &InitContext<'_>, sync: &SyncSocket) -> Result<Program, InitError> {
    let spec = &ctx.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .expect("validated: process is present");
    nix::unistd::setsid().map_err(sys("setsid"))?;
    match sync.recv()? {
        SyncMessage::Proceed => {}
        other => return Err(InitError::Protocol(other)),
    }
    // Device nodes and mount points get exactly the modes asked for.
    umask(Mode::empty());

    if !ctx.no_new_keyring {
        kernel_params::join_session_keyring(ctx.id.as_str())?;
    }
    if let Some(adj) = process.oom_score_adj() {
        kernel_params::set_oom_score_adj(adj)?;
    }

    rootfs::prepare(
        spec,
        &ctx.bundle.rootfs,
        RootfsOptions {
            in_user_ns: ctx.plan.in_user_ns(),
            no_pivot: ctx.no_pivot,
            cgroup: match ctx.cgroup_dir {
                None => CgroupMount::Placeholder,
                Some(_) if ctx.plan.new_cgroup_ns() => CgroupMount::Cgroup2,
                Some(dir) => CgroupMount::Bind(dir),
            },
        },
    )?;

    if let Some(h) = spec.hostname() {
        kernel_params::set_hostname(h)?;
    }
    if let Some(d) = spec.domainname() {
        kernel_params::set_domainname(d)?;
    }
    if let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (k, v) in sysctls {
            kernel_params::write_sysctl(k, v)?;
        }
    }
    rootfs::finish(spec)?;

    let cwd = process.cwd();
    std::fs::create_dir_all(cwd).map_err(|source| InitError::Cwd {
        path: cwd.clone(),
        source,
    })?;
    std::env::set_current_dir(cwd).map_err(|source| InitError::Cwd {
        path: cwd.clone(),
        source,
    })?;

    let args = process.args().as_deref().unwrap_or(&[]);
    let env_list = process.env().as_deref().unwrap_or(&[]);
    let exe = env::lookup_executable(&args[0], env_list)?;
    let program = Program {
        path: path_cstring(&exe)?,
        args: env::c_args(args)?,
        env: env::build_env(env_list, process.user().uid())?,
    };

    rlimits::apply(process.rlimits().as_deref().unwrap_or(&[]))?;
    let caps = CapabilitySets::from_spec(process.capabilities().as_ref())?;
    caps.apply_bounding()?;
    fds::prepare_for_exec(ctx.preserve_fds)?;

    nix::sys::prctl::set_keepcaps(true).map_err(sys("prctl(PR_SET_KEEPCAPS, 1)"))?;
    user::switch(process.user(), user::setgroups_allowed())?;
    nix::sys::prctl::set_keepcaps(false).map_err(sys("prctl(PR_SET_KEEPCAPS, 0)"))?;
    caps.apply_process_sets()?;

    user::apply_umask(process.user());
    if process.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs().map_err(sys("process.noNewPrivileges: prctl"))?;
    }
    reset_signals()?;
    Ok(program)
}

fn path_cstring(p: &Path) -> Result<CString, InitError> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| {
        InitError::Env(EnvError::Nul {
            field: "process.args[0]".to_owned(),
        })
    })
}

/// Unblocks all signals and restores SIGPIPE's default disposition (the Rust runtime
/// ignores SIGPIPE, and an ignored disposition survives `execve`).
fn reset_signals() -> Result<(), InitError> {
    // SAFETY: installing SIG_DFL involves no handler code; nothing in init relies on
    // SIGPIPE being ignored from here on (its remaining writes handle EPIPE as errors).
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map_err(sys("reset SIGPIPE"))?;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(sys("reset signal mask"))
}
