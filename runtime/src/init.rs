//! The container's init: the in-container setup sequence, in order, ending in `execve`.
//! Runs in the process forked by stage-1 (see [`crate::spawn`]), already inside the new
//! namespaces (pid 1 of a new pid namespace). Each step's error names the step and the
//! path or field; it is sent to the waiting `create` over the sync socket and init exits.
//!
//! 1. `setsid`, wait for the parent's `Proceed`
//! 2. session keyring, `oomScoreAdj`
//! 3. rootfs: propagation, mounts, devices ([`crate::rootfs::prepare`]); the parent runs
//!    the prestart and createRuntime hooks, init the createContainer hooks
//!    ([`crate::hooks`]); `pivot_root` ([`crate::rootfs::enter`])
//! 4. the terminal, with `--console-socket` ([`crate::terminal`])
//! 5. hostname, domainname, sysctls
//! 6. read-only and masked paths, read-only root ([`crate::rootfs::finish`])
//! 7. the process: cwd, executable, environment, rlimits, capabilities, user,
//!    `noNewPrivileges`, seccomp ([`crate::process::program`])
//! 8. `Ready` → parent; block on the exec fifo until `start`, run the startContainer
//!    hooks (their failure is reported to `start`); `execve`

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::stat::{Mode, umask};

use crate::bundle::Bundle;
use crate::container_id::ContainerId;
use crate::exec_fifo::{self, ExecFifoError};
use crate::hooks::{self, HookError, HookKind, HookState};
use crate::kernel_params::{self, KernelParamError};
use crate::namespaces::NamespacePlan;
use crate::process::program::{self, ProcessError, ProcessOptions, Program};
use crate::rootfs::{self, CgroupMount, RootfsError, RootfsOptions};
use crate::seccomp::SeccompFilter;
use crate::sync::{SyncError, SyncMessage, SyncSocket};
use crate::terminal::{self, PtySetup, TerminalError};

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
    /// The terminal.
    #[error(transparent)]
    Terminal(#[from] TerminalError),
    /// The process (cwd, executable, credentials, seccomp).
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The exec fifo.
    #[error(transparent)]
    ExecFifo(#[from] ExecFifoError),
    /// A createContainer hook.
    #[error(transparent)]
    Hook(#[from] HookError),
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
    /// The connected `--console-socket` (with `process.terminal`).
    pub console_socket: Option<&'a OwnedFd>,
    /// The compiled `linux.seccomp` filter.
    pub seccomp: Option<&'a SeccompFilter>,
}

/// Runs init; never returns.
pub fn run(ctx: &InitContext<'_>, sync: SyncSocket) -> ! {
    let (program, state) = match setup(ctx, &sync) {
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
    let hooks = ctx.bundle.spec.hooks().as_ref();
    let start_hooks = || {
        let state = HookState {
            status: "created",
            ..state
        };
        hooks::run(HookKind::StartContainer, hooks, &state).map_err(|e| e.to_string())
    };
    if let Err(e) = exec_fifo::wait_for_start(ctx.exec_fifo, start_hooks) {
        eprintln!("berth-runtime init: {e}");
        crate::spawn::exit_now(1);
    }
    let path = program.path().clone();
    let err = program.exec();
    eprintln!("berth-runtime init: exec {path:?}: {err}");
    crate::spawn::exit_now(127);
}

fn setup(ctx: &InitContext<'_>, sync: &SyncSocket) -> Result<(Program, HookState), InitError> {
    let spec = &ctx.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .expect("validated: process is present");
    nix::unistd::setsid().map_err(sys("setsid"))?;
    let pid = match sync.recv()? {
        SyncMessage::Proceed { pid } => pid,
        other => return Err(InitError::Protocol(other)),
    };
    let state = HookState::for_bundle(ctx.id.as_str(), ctx.bundle, "creating", pid);
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
    if hooks::has_any(spec, &[HookKind::Prestart, HookKind::CreateRuntime]) {
        sync.send(&SyncMessage::RunHooks)?;
        match sync.recv()? {
            SyncMessage::HooksDone => {}
            other => return Err(InitError::Protocol(other)),
        }
    }
    hooks::run(HookKind::CreateContainer, spec.hooks().as_ref(), &state)?;
    rootfs::enter(&ctx.bundle.rootfs, ctx.no_pivot)?;

    if let Some(socket) = ctx.console_socket {
        terminal::setup(PtySetup {
            socket,
            mount_console: true,
            size: console_size(process),
            uid: process.user().uid(),
        })?;
    }

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

    let program = program::prepare(
        process,
        ProcessOptions {
            create_cwd: true,
            preserve_fds: ctx.preserve_fds,
            seccomp: ctx.seccomp,
        },
    )?;
    Ok((program, state))
}

/// `process.consoleSize` as (rows, columns), if set and non-zero.
pub fn console_size(process: &oci_spec::runtime::Process) -> Option<(u16, u16)> {
    let b = process.console_size()?;
    let (h, w) = (b.height(), b.width());
    (h != 0 && w != 0).then(|| (h.min(u16::MAX.into()) as u16, w.min(u16::MAX.into()) as u16))
}
