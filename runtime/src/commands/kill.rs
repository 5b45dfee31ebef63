//! `kill [--all] ID [SIGNAL]`: signal the container's init (checked to still be the same
//! process via its recorded start time).
//!
//! `--all` with a cgroup: SIGKILL through `cgroup.kill`, any other signal to every pid in
//! the cgroup (and below). `--all` without cgroups: the container's processes are found as every process whose
//! pid namespace (`/proc/<pid>/ns/pid`) is init's. That needs the container to have its
//! own pid namespace; otherwise there is no way to tell its processes from the host's
//! and `--all` is refused. (Processes in pid namespaces nested inside the container are
//! not listed, but die with the container's init when it is SIGKILLed, as does every
//! process of the namespace.)

use crate::cli::KillArgs;
use crate::container_id::ContainerId;
use crate::error::Error;
use crate::signals;
use crate::state::Status;

use super::Context;

/// Sends the signal.
pub fn run(ctx: &Context, args: &KillArgs) -> Result<(), Error> {
    let id = ContainerId::parse(&args.id)?;
    let sig = signals::parse(&args.signal)?;
    let st = ctx.root.load(&id)?;
    let status = ctx.root.status(&st);
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        return Err(Error::WrongStatus {
            action: "kill",
            id: id.to_string(),
            status,
        });
    }
    let targets = if args.all {
        if let Some(cg) = st.cgroup() {
            if sig == libc::SIGKILL && cg.has_file("cgroup.kill") {
                cg.write("cgroup.kill", "1")?;
                return Ok(());
            }
            cg.all_pids()?
        } else {
            pid_namespace_members(st.init_pid)?
        }
    } else {
        vec![st.init_pid]
    };
    for pid in targets {
        match signals::send(pid, sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(source) => {
                return Err(Error::Kill {
                    signal: sig,
                    pid,
                    source,
                });
            }
        }
    }
    Ok(())
}

fn pid_ns_of(pid: i32) -> std::io::Result<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
}

/// Every process in init's pid namespace (init first).
fn pid_namespace_members(init: i32) -> Result<Vec<i32>, Error> {
    let io = |path: String| {
        move |source| Error::Io {
            step: "read",
            path: path.into(),
            source,
        }
    };
    let init_ns = pid_ns_of(init).map_err(io(format!("/proc/{init}/ns/pid")))?;
    let own_ns = pid_ns_of(std::process::id() as i32).map_err(io("/proc/self/ns/pid".into()))?;
    if init_ns == own_ns {
        return Err(Error::NotSupported {
            what: "kill --all for a container without its own pid namespace (needs cgroups)".into(),
        });
    }
    let mut pids = vec![init];
    for entry in std::fs::read_dir("/proc").map_err(io("/proc".into()))? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != init && pid_ns_of(pid).is_ok_and(|ns| ns == init_ns) {
            pids.push(pid);
        }
    }
    Ok(pids)
}
