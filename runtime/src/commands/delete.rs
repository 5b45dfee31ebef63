//! `delete [--force] ID`: remove a stopped container's state. A created container is
//! killed first (runc does the same: it never ran user code); a running one needs
//! `--force`, which SIGKILLs init — taking the whole pid namespace with it — and waits
//! for it to be gone. The container's cgroup is removed too, after killing anything
//! still in it (`cgroup.kill`).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cli::DeleteArgs;
use crate::container_id::ContainerId;
use crate::error::Error;
use crate::pid_identity;
use crate::signals;
use crate::state::{ContainerState, StateError, Status};

use super::Context;

const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Deletes the container.
pub fn run(ctx: &Context, args: &DeleteArgs) -> Result<(), Error> {
    let id = ContainerId::parse(&args.id)?;
    let st = match ctx.root.load(&id) {
        Ok(st) => st,
        // runc: `delete --force` of a missing container succeeds.
        Err(StateError::NotFound { .. }) if args.force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    match ctx.root.status(&st) {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&st)?,
        Status::Running | Status::Paused if args.force => kill_and_wait(&st)?,
        Status::Creating if args.force => {}
        status => {
            return Err(Error::NotStopped {
                id: id.to_string(),
                status,
            });
        }
    }
    super::remove_container(ctx, &st)
}

fn kill_and_wait(st: &ContainerState) -> Result<(), Error> {
    signals::kill_signal(st.init_pid, Signal::SIGKILL).map_err(|source| Error::Kill {
        signal: libc::SIGKILL,
        pid: st.init_pid,
        source,
    })?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    while pid_identity::is_same_live_process(st.init_pid, st.init_start_time) {
        if Instant::now() > deadline {
            return Err(Error::StopTimeout {
                id: st.id.clone(),
                pid: st.init_pid,
                secs: STOP_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
