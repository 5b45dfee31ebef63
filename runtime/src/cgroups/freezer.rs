//! Pause and resume through cgroup v2's `cgroup.freeze`; the freeze is complete when
//! `cgroup.events` says `frozen 1` (runc waits the same way).

use std::time::{Duration, Instant};

use super::{Cgroup, CgroupError};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the cgroup is frozen.
pub fn is_frozen(cg: &Cgroup) -> bool {
    cg.event("frozen").ok().flatten() == Some(1)
}

fn set(cg: &Cgroup, frozen: bool) -> Result<(), CgroupError> {
    let want = u64::from(frozen);
    cg.write("cgroup.freeze", if frozen { "1" } else { "0" })?;
    let deadline = Instant::now() + TIMEOUT;
    while cg.event("frozen")? != Some(want) {
        if Instant::now() > deadline {
            return Err(CgroupError::Timeout {
                path: cg.dir().to_owned(),
                what: if frozen {
                    "cgroup.events to say frozen 1"
                } else {
                    "cgroup.events to say frozen 0"
                },
                secs: TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Freezes every process of the cgroup and waits until they are.
pub fn freeze(cg: &Cgroup) -> Result<(), CgroupError> {
    set(cg, true)
}

/// Thaws the cgroup.
pub fn thaw(cg: &Cgroup) -> Result<(), CgroupError> {
    set(cg, false)
}
