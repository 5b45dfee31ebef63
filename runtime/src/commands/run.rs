//! `run`: `create` + `start`; in the foreground (the default) the runtime stays as init's
//! subreaper, forwards signals to it, exits with its status (`128 + signal` if it was
//! killed) and deletes the container unless `--keep`. With `--detach` it returns after
//! `start`.

use crate::cli::RunArgs;
use crate::console;
use crate::container_id::ContainerId;
use crate::error::Error;
use crate::signals;

use super::{Context, create, start};

/// Runs the container; returns the exit code to exit with.
pub fn run(ctx: &Context, args: &RunArgs) -> Result<i32, Error> {
    let id = ContainerId::parse(&args.create.id)?;
    if !args.detach {
        nix::sys::prctl::set_child_subreaper(true).map_err(|e| Error::Io {
            step: "prctl(PR_SET_CHILD_SUBREAPER)",
            path: "/".into(),
            source: e.into(),
        })?;
        signals::block_forwardable()?;
    }
    let (pid, master) = create::create(ctx, &args.create, args.detach)?;
    if let Err(e) = start::run(ctx, id.as_str()) {
        let _ = signals::kill_signal(pid, nix::sys::signal::Signal::SIGKILL);
        match ctx.root.load(&id) {
            Ok(st) => {
                let _ = super::remove_container(ctx, &st);
            }
            Err(_) => {
                let _ = ctx.root.remove(&id);
            }
        }
        return Err(e);
    }
    if args.detach {
        return Ok(0);
    }
    let code = match master {
        Some(master) => console::relay(master, pid)?,
        None => signals::forward_until_exit(pid)?,
    };
    if !args.keep {
        // Like runc, a failed clean-up is reported but does not replace the exit status.
        let removed = ctx
            .root
            .load(&id)
            .map_err(Error::from)
            .and_then(|st| super::remove_container(ctx, &st));
        if let Err(e) = removed {
            tracing::warn!(error = %e, "unable to remove the container after it exited");
            eprintln!("berth-runtime: warning: unable to remove container {id}: {e}");
        }
    }
    Ok(code)
}
