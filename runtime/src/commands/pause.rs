//! `pause ID` / `resume ID`: freeze and thaw the container's cgroup (`cgroup.freeze`,
//! waiting for `cgroup.events` to confirm). `state` shows `paused` while frozen.

use crate::cgroups::freezer;
use crate::container_id::ContainerId;
use crate::error::Error;
use crate::state::Status;

use super::{Context, cgroup_of};

/// Freezes a running (or created) container.
pub fn pause(ctx: &Context, id: &str) -> Result<(), Error> {
    let id = ContainerId::parse(id)?;
    let st = ctx.root.load(&id)?;
    let status = ctx.root.status(&st);
    if !matches!(status, Status::Running | Status::Created) {
        return Err(Error::WrongStatus {
            action: "pause",
            id: id.to_string(),
            status,
        });
    }
    freezer::freeze(&cgroup_of(&st, "pause")?)?;
    tracing::info!(id = %id, "container paused");
    Ok(())
}

/// Thaws a paused container.
pub fn resume(ctx: &Context, id: &str) -> Result<(), Error> {
    let id = ContainerId::parse(id)?;
    let st = ctx.root.load(&id)?;
    let status = ctx.root.status(&st);
    if status != Status::Paused {
        return Err(Error::WrongStatus {
            action: "resume",
            id: id.to_string(),
            status,
        });
    }
    freezer::thaw(&cgroup_of(&st, "resume")?)?;
    tracing::info!(id = %id, "container resumed");
    Ok(())
}
