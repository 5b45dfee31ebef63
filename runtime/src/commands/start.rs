//! `start`: release a created container's init through the exec fifo (init then runs
//! the startContainer hooks and reports their failure back through it), then run the
//! poststart hooks (a failure kills the container, as in runc).

use crate::container_id::ContainerId;
use crate::error::Error;
use crate::exec_fifo;
use crate::hooks::{self, HookKind};
use crate::pid_identity;
use crate::signals;
use crate::state::{EXEC_FIFO, Status};

use super::Context;

/// Starts container `id`.
pub fn run(ctx: &Context, id: &str) -> Result<(), Error> {
    let id = ContainerId::parse(id)?;
    let st = ctx.root.load(&id)?;
    let status = ctx.root.status(&st);
    if status != Status::Created {
        return Err(Error::WrongStatus {
            action: "start",
            id: id.to_string(),
            status,
        });
    }
    let fifo = ctx.root.container_dir(&id).join(EXEC_FIFO);
    exec_fifo::release(&fifo, st.init_pid, || {
        pid_identity::is_same_live_process(st.init_pid, st.init_start_time)
    })?;
    tracing::info!(id = %id, pid = st.init_pid, "container started");
    let state = st.hook_state("running", st.init_pid);
    if let Err(e) = hooks::run(HookKind::Poststart, st.hooks.as_ref(), &state) {
        // runc: a failed poststart hook stops the container.
        let _ = signals::kill_signal(st.init_pid, nix::sys::signal::Signal::SIGKILL);
        return Err(e.into());
    }
    Ok(())
}
