//! `create`: validate the bundle, claim the state directory, make the exec fifo, spawn
//! init (which sets the container up and waits on the fifo), record its pid and start
//! time. Any failure removes the state directory; [`crate::spawn`] has already killed
//! whatever it started.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::bundle::Bundle;
use crate::cgroups;
use crate::cli::CreateArgs;
use crate::console;
use crate::container_id::ContainerId;
use crate::error::Error;
use crate::exec_fifo;
use crate::pid_identity;
use crate::seccomp;
use crate::spawn::{self, SpawnRequest};
use crate::state::{self, ContainerState, EXEC_FIFO};
use crate::terminal;
use crate::timefmt;

use super::Context;

/// Creates the container; returns init's pid.
pub fn run(ctx: &Context, args: &CreateArgs) -> Result<i32, Error> {
    create(ctx, args, true).map(|(pid, _)| pid)
}

/// Creates the container for `create` (`detach`) or `run` (detached or not); returns
/// init's pid, and for a foreground `run` with a terminal the pty master (the runtime is
/// then the console, see [`crate::console`]).
pub fn create(
    ctx: &Context,
    args: &CreateArgs,
    detach: bool,
) -> Result<(i32, Option<OwnedFd>), Error> {
    ctx.ensure_not_rootless()?;
    let id = ContainerId::parse(&args.id)?;
    let bundle = Bundle::load(&args.bundle)?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    terminal::check_flags(terminal, detach, args.console_socket.as_deref())?;
    // Validated (and the hierarchy checked) before anything is created.
    let cgroup_plan = cgroups::manager::plan(ctx.cgroup_manager, &bundle.spec, id.as_str())?;
    // Relative paths are relative to where the caller ran us, not to the bundle.
    let pid_file = args.pid_file.as_deref().map(absolute).transpose()?;

    let dir = ctx.root.create_container_dir(&id)?;
    let mut cgroup = None;
    // A foreground process with a terminal: the runtime is the console.
    let own_console = if terminal && !detach {
        Some(console::pair()?)
    } else {
        None
    };
    let result = create_in_dir(
        ctx,
        args,
        &id,
        &bundle,
        &dir,
        pid_file.as_deref(),
        cgroup_plan.as_ref(),
        &mut cgroup,
        own_console.as_ref().map(|(_, theirs)| theirs),
    )
    .and_then(|pid| match &own_console {
        // init sent the master before reporting Ready.
        Some((ours, _)) => Ok((pid, Some(console::receive_master(ours)?))),
        None => Ok((pid, None)),
    });
    if result.is_err() {
        if let Some(cg) = cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!(error = %e, "removing the cgroup of the failed container");
            }
        }
        if let Err(e) = ctx.root.remove(&id) {
            tracing::warn!(error = %e, "removing the state of the failed container");
        }
    }
    result
}

fn absolute(p: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(p).map_err(|source| Error::Io {
        step: "resolve",
        path: p.to_owned(),
        source,
    })
}

#[allow(clippy::too_many_arguments)]
fn create_in_dir(
    ctx: &Context,
    args: &CreateArgs,
    id: &ContainerId,
    bundle: &Bundle,
    dir: &Path,
    pid_file: Option<&Path>,
    cgroup_plan: Option<&cgroups::manager::CgroupPlan>,
    cgroup: &mut Option<cgroups::Cgroup>,
    own_console: Option<&OwnedFd>,
) -> Result<i32, Error> {
    let me = std::process::id() as i32;
    let me_start = pid_identity::read(me)
        .ok()
        .flatten()
        .map_or(0, |s| s.start_time);
    let mut st = ContainerState {
        oci_version: bundle.spec.version().clone(),
        id: id.to_string(),
        init_pid: 0,
        init_start_time: 0,
        creator_pid: me,
        creator_start_time: me_start,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: timefmt::now_rfc3339(),
        owner_uid: nix::unistd::geteuid().as_raw(),
        annotations: bundle
            .spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cgroup_path: None,
        hooks: bundle.spec.hooks().clone(),
    };
    ctx.root.save(&st)?;
    if let Some(plan) = cgroup_plan {
        let cg = plan.apply()?;
        st.cgroup_path = Some(cg.dir().to_owned());
        *cgroup = Some(cg);
        ctx.root.save(&st)?;
    }

    // Like runc, the container's relative paths (bind sources, rootfs) are relative to
    // the bundle.
    std::env::set_current_dir(&bundle.dir).map_err(|source| Error::Io {
        step: "chdir",
        path: bundle.dir.clone(),
        source,
    })?;

    let fifo_path = dir.join(EXEC_FIFO);
    exec_fifo::create(&fifo_path)?;
    let fifo = spawn::move_above(
        exec_fifo::open_path(&fifo_path)?,
        3 + args.preserve_fds as i32,
    )?;

    let console = match (args.console_socket.as_deref(), own_console) {
        (Some(path), _) => Some(terminal::connect(path)?),
        (None, Some(fd)) => Some(fd.try_clone().map_err(|source| Error::Io {
            step: "dup the console socket",
            path: "/".into(),
            source,
        })?),
        (None, None) => None,
    }
    .map(|fd| spawn::move_above(fd, 3 + args.preserve_fds as i32))
    .transpose()?;
    let seccomp = seccomp::compile_for(&bundle.spec)?;

    let pid = spawn::spawn(&SpawnRequest {
        id,
        bundle,
        exec_fifo: &fifo,
        preserve_fds: args.preserve_fds,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        cgroup: cgroup.as_ref(),
        console_socket: console.as_ref(),
        seccomp: seccomp.as_ref(),
    })?;
    let start_time = pid_identity::read(pid)
        .ok()
        .flatten()
        .map(|s| s.start_time)
        .ok_or(Error::Spawn(spawn::SpawnError::ChildDied))?;
    st.init_pid = pid;
    st.init_start_time = start_time;
    ctx.root.save(&st)?;
    if let Some(pf) = pid_file {
        state::write_atomic(pf, pid.to_string().as_bytes())?;
    }
    tracing::info!(id = %id, pid, "container created");
    Ok(pid)
}
